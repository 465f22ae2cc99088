"""Benchmark 5: the offline default end to end, wall time per stage.

Measured here, in this process: a reduced offline default (params/mini.yml with three of its prompts, 1-, 2- and
5-model, one epoch, into outputs/bench/e2e/) run stage by stage: prepare (family and data), training, token
masking, evaluation and report; the same run again, which reads back what the first wrote (what re-running a
notebook costs; with `--compare-map-cache` also once with the t-SNE maps' coordinates removed, so that they are
recomputed as before they were kept); and the family builder's pretraining rate (steps of one seed with the shipped
family's configuration, in a scratch folder). With `--init-variants`, also the training of the offline default's
three init-seed variants (5_model_0, 5_model_init_1, 5_model_init_2: the same five models, one epoch) in one pass
(`stack_prompts: true`) against one at a time, side by side, and how far apart the prompts end. Read, not measured here: the stage times of the last full
`make reproduce` (outputs/mini/tables/timings_*.csv), when that run exists.

    python benchmarks/bench_e2e.py [--pretraining-steps 20] [--compare-map-cache] [--init-variants REPEATS]
"""
from __future__ import annotations

import argparse, shutil, statistics, sys, tempfile, time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, emit_record, machine, write_json  # noqa: E402

from explainable_soft_prompts.config import load_params  # noqa: E402
from explainable_soft_prompts.distributed import run_distributed  # noqa: E402
from explainable_soft_prompts.experiment import prepare, prompt_groups, train_all  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pretraining_rate(steps: int) -> dict:
    "Seconds per pretraining step of one seed with the shipped family's configuration (its tokenizer and corpus)."
    from explainable_soft_prompts.models import FamilyBuildConfig, pack_sequences, pretrain_seed, pretraining_texts, offline_task_eval_texts
    from transformers import AutoTokenizer
    record = __import__("json").loads((REPO / "families/tweets-mini/family.json").read_text())["config"]
    cfg = FamilyBuildConfig(**{**record, "task_split_sizes": tuple(record["task_split_sizes"])})
    tokenizer = AutoTokenizer.from_pretrained(REPO / "families/tweets-mini/seed_0")
    texts = pretraining_texts(offline_task_eval_texts(cfg.task_split_sizes, cfg.task_split_seed), corpus=cfg.corpus)[:20000]
    rows = pack_sequences(texts, tokenizer, cfg.seq_length)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pretrain_seed(0, rows, tokenizer, replace(cfg, steps=steps, checkpoint_every=10**9), tmp, progress=False)
        seconds = time.perf_counter() - start
    per_step = seconds / steps
    return {"pretraining_steps": steps, "pretraining_s": round(seconds, 2), "s_per_step": round(per_step, 4),
            "tokens_per_s": round(cfg.batch_size * cfg.seq_length / per_step),
            "threads": torch.get_num_threads(), "estimated_full_build_min": round(per_step * cfg.steps * cfg.n_models / 60, 1),
            "note": "estimate, not a measurement: this rate x steps x seeds, one seed after the other (make family runs two one-thread workers)"}


def timed_run(params: dict) -> dict:
    "Run the experiment of `params` once (training, masking, evaluation, report): seconds per stage and in all."
    start = time.perf_counter()
    timings = run_distributed(params, report=True, progress=False)["timings"]
    return {"stages_s": {k: round(v, 1) for k, v in timings.items()}, "total_s": round(time.perf_counter() - start, 1)}


INIT_VARIANTS = ["5_model_0", "5_model_init_1", "5_model_init_2"]


def init_variants_training(params: dict, repeats: int, folder, variants=INIT_VARIANTS) -> dict:
    """Seconds to train the init-seed variants of `params` (`variants`: prompt names) in one pass and one at a time,
    alternating which goes first, each in a fresh run folder under `folder`; and the largest difference between their prompts."""
    base = {**params, "output_dir": str(folder), "prompts": {k: params["prompts"][k] for k in variants}}
    seconds, prompts, passes = {"one_pass": [], "one_at_a_time": []}, {}, {}
    for repeat in range(repeats):
        order = ["one_at_a_time", "one_pass"] if repeat % 2 == 0 else ["one_pass", "one_at_a_time"]
        for way in order:
            cfg, _, models, names, tokenizer, data = prepare({**base, "run_name": f"{way}_{repeat}", "stack_prompts": way == "one_pass"}, progress=False)
            passes[way] = len(prompt_groups(cfg))                      # training passes the run takes
            start = time.perf_counter()
            results = train_all(cfg, models, names, data, tokenizer, progress=False)
            seconds[way].append(round(time.perf_counter() - start, 3))
            prompts[way] = {k: r.prompt for k, r in results.items()}
    median = {way: statistics.median(v) for way, v in seconds.items()}
    return {"prompts": list(variants), "epochs": params["epochs"], "batch_size": params["batch_size"], "repeats": repeats,
            **{f"{way}_s": round(m, 2) for way, m in median.items()}, "training_passes": passes, "seconds": seconds,
            "speedup_one_pass_over_one_at_a_time": round(median["one_at_a_time"] / median["one_pass"], 3),
            "max_prompt_diff": max(float((prompts["one_pass"][k] - prompts["one_at_a_time"][k]).abs().max()) for k in variants)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretraining-steps", type=int, default=20)
    parser.add_argument("--compare-map-cache", action="store_true", help="also run it again without the kept t-SNE coordinates (about 35 s more)")
    parser.add_argument("--init-variants", type=int, default=0, metavar="REPEATS",
                        help="also time the three init-seed variants' training in one pass against one at a time, REPEATS times each "
                             "(about 2 minutes a repeat; 0: skip), written to --init-variants-out")
    parser.add_argument("--init-variants-only", action="store_true", help="time the init-seed variants only, not the stages")
    parser.add_argument("--out", default="outputs/bench/e2e.json")
    parser.add_argument("--init-variants-out", default="outputs/bench/init_variants.json")
    args = parser.parse_args(argv)
    mini = {**load_params(REPO / "params/mini.yml"), "family_dir": str(REPO / "families/tweets-mini"), "epochs": 1}
    if not args.init_variants_only: stages(mini, args)
    if args.init_variants or args.init_variants_only:
        with tempfile.TemporaryDirectory() as tmp:
            variants = {"benchmark": "init_variants_training", **init_variants_training(mini, args.init_variants or 1, tmp)}
        emit_record(variants)
        write_json({**variants, "machine": machine()}, args.init_variants_out)


def stages(mini: dict, args):
    "The reduced offline default stage by stage, the same run again, the family builder's rate, the last full run's stages."
    keep = ["1_model_0", "2_model_0", "5_model_0"]
    output_dir = REPO / "outputs/bench/e2e"
    shutil.rmtree(output_dir, ignore_errors=True)
    params = {**mini, "run_name": "mini-reduced", "output_dir": str(output_dir), "prompts": {k: mini["prompts"][k] for k in keep}}
    record = {"benchmark": "offline_default_stages", "run": f"params/mini.yml reduced to {keep}, 1 epoch", **timed_run(params)}
    emit(record)
    # the same run again with everything read back; with --compare-map-cache first once without the t-SNE coordinates
    again = record["again"] = {}
    if args.compare_map_cache:
        shutil.rmtree(output_dir / params["run_name"] / "tables" / "embedding_map")
        again["without_map_coordinates"] = timed_run(params)
    again["all_kept"] = timed_run(params)
    if args.compare_map_cache:
        again["speedup_all_kept_over_without_map_coordinates"] = round(again["without_map_coordinates"]["total_s"] / again["all_kept"]["total_s"], 1)
    emit({"benchmark": "offline_default_run_again", **again})
    rate = {"benchmark": "family_build_rate", **pretraining_rate(args.pretraining_steps)}
    emit(rate)
    full = {}
    for part in ("training", "report"):
        path = REPO / f"outputs/mini/tables/timings_{part}.csv"
        if path.exists(): full.update(dict(pd.read_csv(path).itertuples(index=False)))
    if full: emit({"benchmark": "last_full_make_reproduce", "source": "outputs/mini/tables/timings_*.csv (read, not measured here)", "stages_s": full})
    write_json({"reduced_run": record, "family_build_rate": rate, "last_full_make_reproduce": full, "machine": machine()}, args.out)


if __name__ == "__main__":
    main()
