"The benchmark scripts still run and judge their targets honestly (a tiny run; no timing is asserted)."
import json, os, statistics, subprocess, sys

import pytest, torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_e2e, bench_masking, bench_training  # noqa: E402
from common import agreement, cpu_info, target  # noqa: E402


def speedup_from_repeats(record: dict, seconds: dict, faster: str, slower: str, repeats: int) -> float:
    """The speed-up of `faster` over `slower` recomputed from the timed repeats (`seconds`: lists by method): the
    ratio of their medians. Checks on the way that each method was timed `repeats` times and that the record's
    `<method>_s` is that median."""
    for name in (faster, slower):
        assert len(seconds[name]) == repeats and min(seconds[name]) > 0
        assert record[f"{name}_s"] == round(statistics.median(seconds[name]), 4)
    return round(statistics.median(seconds[slower]) / statistics.median(seconds[faster]), 3)


def test_target():
    assert target(1.6, at_least=1.5) == {"target": ">= 1.5", "target_met": True}
    assert target(0.92, at_least=1.5) == {"target": ">= 1.5", "target_met": False}
    assert target(0.7, at_most=1.0) == {"target": "<= 1.0", "target_met": True}
    assert target(1.2, at_most=1.0)["target_met"] is False
    assert target(3.0) == {}                                          # no target set
    assert target(1.6, at_least=1.5, same_numbers=False)["target_met"] is False    # fast but not the same numbers: not met
    assert agreement(False, 1e-6, 2e-7) == {"tolerance": 1e-4, "same_numbers": True}
    assert agreement(False, 1e-6, 3e-3)["same_numbers"] is False and agreement(True, 1e-6, 3e-3)["same_numbers"] is True


def test_cpu_info_names_the_machine():
    text = ("processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 26\nmodel\t\t: 2\nflags\t\t: fpu avx2 avx512f avx512_bf16 fma\n\n"
            "processor\t: 1\nmodel name\t: another core\n")
    assert cpu_info(text) == {"cpu_model": "AMD EPYC", "cpu_family": "26", "cpu_model_number": "2", "vector_extensions": ["avx2", "avx512f", "avx512_bf16"]}
    assert cpu_info("processor\t: 0\nflags\t\t: sse2\n")["vector_extensions"] == []    # a field missing: None, not an error
    assert cpu_info("processor\t: 0\n")["cpu_model"] is None


def test_training_targets():
    assert bench_training.training_target("family", 5, "cpu") == 1.5
    assert bench_training.training_target("family", 2, "cpu") is None
    assert bench_training.training_target("bert-base", 10, "cpu") == 0.95
    assert bench_training.training_target("bert-base", 5, "cuda") == 1.5
    assert bench_training.training_target("bert-base", 2, "cuda") is None and bench_training.training_target("family", 10, "cuda") is None


def test_training_benchmark_runs(tmp_path):
    out = tmp_path / "training.json"
    bench_training.main(["--shapes", "family", "--models", "1", "5", "--repeats", "3", "--full-logits", "5", "--no-memory", "--stacked-prompts", "0", "--out", str(out)])
    records = json.loads(out.read_text())["records"]
    assert [(r["batch"], r["models"]) for r in records] == [(8, 1), (8, 5), (32, 1), (32, 5)]   # the study's two micro-batches at M = 5
    for r in records:
        assert r["max_loss_diff"] < 1e-4 and r["max_relative_grad_diff"] < 1e-4          # every method computes the same step
        assert r["same_numbers"] is True and r["tolerance"] == 1e-4
        assert r["speedup_vectorized_over_loop"] == speedup_from_repeats(r, r["seconds"], "vectorized", "loop", 3)
        assert r["near_empty_loop_s"] > 0 and r["near_empty_vectorized_s"] > 0                        # the fixed cost, timed for every M
    one, five = records[2:]
    assert "target" not in one and "full_logits_loop_s" not in one                    # the full-logits loop only where asked
    assert records[1]["target"] == ">= 1.5"                                           # judged at both micro-batches
    assert five["target"] == ">= 1.5" and five["target_met"] == (five["speedup_vectorized_over_loop"] >= 1.5 and five["same_numbers"])
    assert five["speedup_vectorized_over_full_logits_loop"] == speedup_from_repeats(five, five["seconds"], "vectorized", "full_logits_loop", 3)
    assert five["target_met_over_full_logits_loop"] == (five["speedup_vectorized_over_full_logits_loop"] >= 1.5)


def test_speedup_decomposition():
    "Saving the fixed cost alone bounds the speed-up; slower stacked work pulls it under the bound, faster above."
    near_empty = {"loop": 0.03, "vectorized": 0.01}
    d = bench_training.speedup_decomposition({"loop": 0.18, "vectorized": 0.16}, near_empty)     # work above: 0.15 both
    assert d["speedup_bound_at_equal_work_time"] == round(0.18 / 0.16, 3) and d["work_time_vectorized_over_loop"] == 1.0
    slower = bench_training.speedup_decomposition({"loop": 0.18, "vectorized": 0.19}, near_empty)  # work above: 0.18 against 0.15
    assert slower["speedup_bound_at_equal_work_time"] == d["speedup_bound_at_equal_work_time"] and slower["work_time_vectorized_over_loop"] == 1.2
    assert bench_training.speedup_decomposition({"loop": 0.18, "vectorized": 0.13}, near_empty)["work_time_vectorized_over_loop"] == 0.8
    # no work above the near-empty step (a GPU at small sizes): nothing to split, rather than a negative work-time ratio
    launch_bound = bench_training.speedup_decomposition({"loop": 0.0207, "vectorized": 0.0198}, {"loop": 0.0210, "vectorized": 0.0190})
    assert launch_bound["speedup_bound_at_equal_work_time"] is None and launch_bound["work_time_vectorized_over_loop"] is None


def test_training_benchmark_in_bf16_runs_as_training_does(tmp_path):
    "`--bf16` is autocast over fp32 weights (training's `bf16: true`), in every figure, and each way still agrees within bf16's tolerance."
    out = tmp_path / "training.json"
    bench_training.main(["--shapes", "family", "--models", "1", "2", "--batch", "3", "--repeats", "1", "--full-logits", "2", "--no-memory",
                         "--stacked-prompts", "2", "--bf16", "--out", str(out)])
    records = json.loads(out.read_text())["records"]
    assert [r["benchmark"] for r in records] == ["training_step", "training_step", "stacked_prompts_step"]
    assert all(r["bf16"] and r["same_numbers"] and r["tolerance"] == 5e-2 for r in records)
    assert records[1]["max_relative_grad_diff"] > 1e-4                 # autocast really ran: the ways round differently


def test_stacked_prompts_benchmark_through_either_path(tmp_path):
    "The stacked-prompt step gives the separate steps' losses and gradients through the loop and through the stacked family."
    from common import random_family
    for path in ("loop", "vectorized"):
        record = bench_training.bench_stacked_prompts(random_family(2, "family"), "family", 2, 1, 3, 10, path=path)
        assert record["path"] == path and record["max_loss_diff"] < 1e-5 and record["max_relative_grad_diff"] < 1e-5
    assert bench_training.bench_stacked_prompts(random_family(2, "family"), "family", 2, 1, 3, 10)["path"] == "loop"   # auto, on a CPU


def test_full_logits_step_matches_the_loop():
    "The study's design (logits at every position, read at [MASK]) gives the loop's losses and prompt gradient."
    from common import random_family, step_inputs
    models = random_family(2, "family")
    batch, targets, prompt = step_inputs("family", 3, 10)
    batch["mask_positions"] = torch.tensor([8, 5, 2])                 # [MASK] at different rows: the read-out must follow them
    (full_losses, full_grad), (loop_losses, loop_grad) = (bench_training.make_step(models, m, batch, targets, prompt, "cpu")() for m in ("full_logits_loop", "loop"))
    assert torch.allclose(full_losses, loop_losses, atol=1e-5) and torch.allclose(full_grad, loop_grad, atol=1e-5)
    assert full_grad.abs().sum() > 0
    with pytest.raises(ValueError, match="Unknown method"): bench_training.make_step(models, "fast", batch, targets, prompt, "cpu")


def test_masking_benchmark_runs_with_bigger_batched_forwards_and_a_bf16_reference(tmp_path):
    out = tmp_path / "masking.json"
    bench_masking.main(["--models", "2", "--length", "4", "--examples", "6", "--text-length", "12", "--batch-size", "4",
                        "--batched-batch-size", "15", "--bf16", "--repeats", "1", "--forward-sizes", "5", "15", "--out", str(out)])
    r, sizes, seconds = (json.loads(out.read_text())[k] for k in ("record", "forward_sizes", "seconds"))
    assert (r["batch_size"], r["batched_batch_size"]) == (4, 15)                      # 3 examples x 5 variants a forward
    assert r["max_abs_diff"] < 1e-5                                                    # every fp32 method gives the same matrix
    assert 1e-5 < r["max_abs_diff_bf16"] < 0.05 and 1e-5 < r["max_abs_diff_full_logits_loop_bf16"] < 0.05   # bf16 really ran, and is close
    assert r["same_numbers"] is True and r["target_met"] == (r["speedup_batched_over_full_logits_loop"] >= 3.0)
    assert r["target_bf16"] == ">= 3.0" and r["target_met_bf16"] == (r["speedup_batched_bf16_over_full_logits_loop_bf16"] >= 3.0)
    assert r["speedup_batched_over_full_logits_loop"] == speedup_from_repeats(r, seconds, "batched", "full_logits_loop", 1)
    assert r["speedup_batched_bf16_over_full_logits_loop_bf16"] == speedup_from_repeats(r, seconds, "batched_bf16", "full_logits_loop_bf16", 1)
    assert sizes["max_abs_diff_fp32"] < 1e-5                                          # the forward size changes no result
    assert {k for k in sizes if k.startswith("speedup")} == {"speedup_fp32_15_over_fp32_5", "speedup_bf16_15_over_bf16_5"}
    assert sizes["speedup_fp32_15_over_fp32_5"] == speedup_from_repeats(sizes, seconds, "fp32_15", "fp32_5", 1)


def test_pipeline_check_runs_on_the_cpu(tmp_path):
    "`gpu_pipeline.py --device cpu`: the micro experiment with the stacked family against the loop, both on the CPU."
    import gpu_pipeline
    out = tmp_path / "pipeline.json"
    gpu_pipeline.main(["--device", "cpu", "--out", str(out)])
    record = json.loads(out.read_text())["records"][0]
    assert record["prompts"] == 5 and record["within_tolerance"]
    assert 0 < record["max_prompt_diff"] < 1e-4                     # the two training paths ran (not one cached run twice)
    assert set(record["device_timings_s"]) == set(record["cpu_timings_s"]) >= {"training", "token masking"}


def test_stacked_prompt_step_at_every_batch_size(tmp_path):
    "The stacked-prompt step is timed at every batch size of a shape it is asked for; BERT-base's only when asked on a CPU."
    out = tmp_path / "training.json"
    bench_training.main(["--shapes", "family", "--models", "1", "--batch", "2", "3", "--repeats", "1", "--full-logits", "--no-memory", "--stacked-prompts", "2", "--out", str(out)])
    stacked = [r for r in json.loads(out.read_text())["records"] if r["benchmark"] == "stacked_prompts_step"]
    assert [(r["batch"], r["models"], r["prompts"], r["path"]) for r in stacked] == [(2, 5, 2, "loop"), (3, 5, 2, "loop")]   # M = 5, the CPU's loop
    assert all(r["max_loss_diff"] < 1e-5 and r["max_relative_grad_diff"] < 1e-5 for r in stacked)
    assert bench_training.stacked_prompt_shapes(None, "cpu") == ("family",)
    assert bench_training.stacked_prompt_shapes(None, "cuda") == ("family", "bert-base")
    assert bench_training.stacked_prompt_shapes(["bert-base"], "cpu") == ("bert-base",)


def test_init_variants_training(tmp_path):
    "The init-seed variants train in one pass and one at a time as asked, to the same prompts."
    from micro import micro_setup
    params = {**micro_setup(tmp_path), "epochs": 1}
    params["prompts"]["2_model_init_2"] = {"models": [0, 1], "init_seed": 8}
    variants = ["2_model_0", "2_model_init_1", "2_model_init_2"]
    record = bench_e2e.init_variants_training(params, 1, tmp_path / "runs", variants)
    assert record["training_passes"] == {"one_at_a_time": 3, "one_pass": 1}
    assert record["prompts"] == variants and record["max_prompt_diff"] < 1e-5


def test_micro_batches_longest_first(tmp_path):
    "Micro-batches longest first pad less than in the drawn order and give the one-forward step's losses and gradients."
    import pandas as pd
    from common import random_family
    from explainable_soft_prompts.data import tiny_tokenizer, tokenize_examples
    texts = [" ".join(["movie"] * (i % 9)) + " good" for i in range(40)]
    split = tokenize_examples(pd.Series(texts), pd.Series([i % 2 for i in range(40)]), tiny_tokenizer(), 32, 16)
    record = bench_training.bench_micro_batches(random_family(2, "family"), split, torch.tensor([5, 6]), batch_size=8, micro=3, steps=2, repeats=1)
    padding = record["padded_over_real_text_tokens"]
    assert padding["longest_first"] < padding["drawn_order"] <= padding["one_forward"] and padding["longest_first"] >= 1
    assert record["padded_over_real_text_tokens_epoch"]["longest_first"] < record["padded_over_real_text_tokens_epoch"]["drawn_order"]
    assert record["max_loss_diff"] < 1e-5 and record["max_relative_grad_diff"] < 1e-5 and record["path"] == "loop"
    assert record["speedup_longest_first_over_drawn_order"] == speedup_from_repeats(record, record["seconds"], "longest_first", "drawn_order", 1)
    plans = bench_training.micro_batch_plans(split, 8, 3, 2)
    assert all(sorted(sum(plan[s], [])) == sorted(plans["one_forward"][s][0]) for plan in plans.values() for s in range(2))   # the same examples
    assert [len(chunks) for chunks in plans["longest_first"]] == [3, 3]


def test_padding_dropped_or_kept(tmp_path):
    "The batched BERT on the real tokens alone gives the padded rows' and the loop's losses and gradients; `--random-lengths` times it."
    from common import random_family
    batches = bench_training.random_length_batches("family", 20, 12, 2)                                      # 20 rows: two attention groups
    lengths = torch.stack([b["attention_mask"].sum(1) for b in batches])
    assert lengths.min() >= 8 and lengths.max() <= 12 and len(set(lengths.flatten().tolist())) > 1           # padded: texts differ in length
    assert all((b["input_ids"][torch.arange(20), b["mask_positions"]] == 4).all() for b in batches)          # [MASK] where the batch says
    record = bench_training.bench_padding(random_family(3, "family"), batches, torch.tensor([5, 6]), 1)
    assert record["padded_over_real_tokens"] > 1 and record["max_loss_diff"] < 1e-5 and record["max_relative_grad_diff"] < 1e-5
    assert record["speedup_unpadded_over_padded"] == speedup_from_repeats(record, record["seconds"], "unpadded", "padded", 1)
    out = tmp_path / "training.json"
    bench_training.main(["--shapes", "family", "--models", "1", "--batch", "3", "--repeats", "1", "--full-logits", "--no-memory", "--stacked-prompts", "0",
                         "--random-lengths", "--out", str(out)])
    padding = [r for r in json.loads(out.read_text())["records"] if r["benchmark"] == "padding"]
    assert [(r["models"], r["batch"]) for r in padding] == [(5, 3)] and padding[0]["max_relative_grad_diff"] < 1e-5


def test_stacking_holds_no_second_copy_of_the_weights():
    """The memory benchmark at the family's shape, M = 5: the models view the stack, and after stacking the process holds
    no second copy. A copy made and freed during the stacking is below what the setup's peak resolves at this size."""
    record = bench_training.peak_memory("family", 5, 2, 8)
    assert record["models_view_the_stack"] is True and record["no_second_copy_of_weights"] is True
    assert record["no_second_copy_during_setup"] is None                            # 14 MiB of weights: not judged
    if record["vectorized_minus_loop_after_setup_trimmed_mib"] is not None:      # glibc: a copy would add the weights' 14 MiB
        assert record["vectorized_minus_loop_after_setup_trimmed_mib"] < 0.5 * record["weights_mib"]


def test_gpu_check_commands_parse_and_write_to_out(tmp_path):
    """`gpu_check.sh`, as an unattended call on a lent GPU runs it: every command line parses against its script's
    arguments, every step runs although none is fast, and the log lands in `$OUT`. Each Python command goes to a
    stand-in that parses the arguments and stops there (no benchmark runs)."""
    shim = tmp_path / "parse_only.py"
    shim.write_text("""import argparse, runpy, sys
parse = argparse.ArgumentParser.parse_args
def parse_only(self, args=None, namespace=None):
    parse(self, args, namespace); print("parsed", sys.argv[0]); sys.exit(0)
argparse.ArgumentParser.parse_args = parse_only
if sys.argv[1] in ("-c", "-m"): print("ran", sys.argv[1:3]); sys.exit(0)
sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")
""")
    env = {**os.environ, "PY": f"{sys.executable} {shim}", "OUT": str(tmp_path / "out"), "DEVICE": "cuda"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    scripts = ["gpu_pipeline.py", "bench_training.py", "bench_masking.py", "bench_peft.py", "bench_flops.py"]
    assert [line.split()[1] for line in log.splitlines() if line.startswith("parsed")] == [f"benchmarks/{s}" for s in scripts]
    assert "ran ['-m', 'pytest']" in log and "failed" not in log
    assert f'--out {tmp_path / "out"}/gpu_' in log                                 # results go to $OUT, which comes back
