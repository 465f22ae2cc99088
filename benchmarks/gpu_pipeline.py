"""The whole pipeline on a GPU: the tests' micro experiment (a 3-model tiny family, a local imdb-shaped dataset, five
prompts) trained, token-masked, evaluated and reported on `--device` with the stacked family (one batched BERT, the
default on CUDA) and on the CPU with the loop over the models (the default there), from the same starting state,
so it also checks the two training paths agree through whole runs (`--device cpu` runs both on the CPU). Prints one
JSON line: the largest differences between the two runs' trained prompts, token-masking tables and test-by-model
table, whether they lie within tolerance, and each run's stage timings.

    python benchmarks/gpu_pipeline.py [--device cuda] [--out outputs/bench/gpu_pipeline.json]
"""
from __future__ import annotations

import argparse, sys, tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent)); sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from common import emit, machine, write_json  # noqa: E402
from micro import micro_setup  # noqa: E402

from explainable_soft_prompts.distributed import run_distributed  # noqa: E402

# fp32 on both devices; differences of order 1e-6 per step compound over the micro run's 8 optimizer steps
TOLERANCE = 1e-4


def run_on(params: dict, device: str, vectorized: bool, folder: Path) -> dict:
    "Run the micro experiment on `device` into `folder`; its prompts, tables and timings."
    params = {**params, "device": device, "vectorized": vectorized, "output_dir": str(folder)}
    out = run_distributed(params, report=True, progress=False)
    tables = folder / params["run_name"] / "tables"
    return {"prompts": {name: r.prompt.detach().float().cpu() for name, r in out["results"].items()},
            "masking": {p.stem: pd.read_csv(p) for p in sorted((tables / "token_masking").glob("*.csv"))},
            "test_by_model": pd.read_csv(tables / "test_by_model.csv"), "timings": out["timings"]}


def largest_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    "Largest absolute difference between two tables' numeric columns (which must match)."
    assert list(a.columns) == list(b.columns) and len(a) == len(b), "the two runs wrote differently shaped tables"
    numeric = a.select_dtypes("number").columns
    return float((a[numeric] - b[numeric]).abs().to_numpy().max()) if len(numeric) else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="outputs/bench/gpu_pipeline.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        params = micro_setup(root)
        gpu = run_on(params, args.device, True, root / "device")
        cpu = run_on(params, "cpu", False, root / "cpu")
    assert gpu["prompts"].keys() == cpu["prompts"].keys() and gpu["masking"].keys() == cpu["masking"].keys()
    record = {"benchmark": "pipeline_on_device", "device": args.device, "prompts": len(gpu["prompts"]),
              "max_prompt_diff": max(float((gpu["prompts"][n] - cpu["prompts"][n]).abs().max()) for n in gpu["prompts"]),
              "max_masking_table_diff": max(largest_difference(gpu["masking"][n], cpu["masking"][n]) for n in gpu["masking"]),
              "max_test_by_model_diff": largest_difference(gpu["test_by_model"], cpu["test_by_model"]),
              "tolerance": TOLERANCE, "device_timings_s": {k: round(v, 2) for k, v in gpu["timings"].items()},
              "cpu_timings_s": {k: round(v, 2) for k, v in cpu["timings"].items()}}
    record["within_tolerance"] = max(record["max_prompt_diff"], record["max_masking_table_diff"], record["max_test_by_model_diff"]) <= TOLERANCE
    emit(record)
    write_json({"records": [record], "machine": machine()}, args.out)
    if not record["within_tolerance"]: sys.exit(f"the {args.device} run differs from the CPU run by more than {TOLERANCE}")


if __name__ == "__main__":
    main()
