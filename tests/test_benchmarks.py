"The benchmark scripts still run and judge their targets honestly (a tiny run; no timing is asserted)."
import json, sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_training  # noqa: E402
from common import target  # noqa: E402


def test_target():
    assert target(1.6, at_least=1.5) == {"target": ">= 1.5", "target_met": True}
    assert target(0.92, at_least=1.5) == {"target": ">= 1.5", "target_met": False}
    assert target(0.7, at_most=1.0) == {"target": "<= 1.0", "target_met": True}
    assert target(1.2, at_most=1.0)["target_met"] is False
    assert target(3.0) == {}                                          # no target set


def test_training_targets():
    assert bench_training.training_target("family", 5, "cpu") == 1.5
    assert bench_training.training_target("family", 2, "cpu") is None
    assert bench_training.training_target("bert-base", 10, "cpu") == 0.95
    assert bench_training.training_target("bert-base", 5, "cuda") == 1.5


def test_training_benchmark_runs(tmp_path):
    out = tmp_path / "training.json"
    bench_training.main(["--shapes", "family", "--models", "1", "5", "--repeats", "1", "--no-memory", "--stacked-prompts", "0", "--out", str(out)])
    records = json.loads(out.read_text())["records"]
    assert [r["models"] for r in records] == [1, 5]
    for r in records:
        assert r["max_loss_diff"] < 1e-4 and r["max_relative_grad_diff"] < 1e-4          # both paths compute the same step
        assert abs(r["speedup_vectorized_over_loop"] * r["vectorized_s"] / r["loop_s"] - 1) < 0.01     # the ratio of the two medians
    assert "target" not in records[0]
    assert records[1]["target"] == ">= 1.5" and records[1]["target_met"] == (records[1]["speedup_vectorized_over_loop"] >= 1.5)


def test_pipeline_check_runs_on_the_cpu(tmp_path):
    "`gpu_pipeline.py --device cpu`: the micro experiment with the stacked family against the loop, both on the CPU."
    import gpu_pipeline
    out = tmp_path / "pipeline.json"
    gpu_pipeline.main(["--device", "cpu", "--out", str(out)])
    record = json.loads(out.read_text())["records"][0]
    assert record["prompts"] == 5 and record["within_tolerance"]
    assert 0 < record["max_prompt_diff"] < 1e-4                     # the two training paths ran (not one cached run twice)
    assert set(record["device_timings_s"]) == set(record["cpu_timings_s"]) >= {"training", "token masking"}
