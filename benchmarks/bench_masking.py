"""Benchmark: the batched token masking matrix (all L+1 prompt variants in one pass over the split per model)
against the study's method (one pass per model and masked token), on the same prompt, family and data.

    nice -n 10 .venv/bin/python benchmarks/bench_masking.py [--models 5 --length 16 --examples 300 --repeats 3]

Prints one JSON line per repetition and a summary line (median seconds, time ratio, largest absolute difference
between the two matrices), and writes the summary to outputs/bench/masking.json (atomically).
"""
import argparse, json, os, platform, statistics, tempfile, time
from pathlib import Path

import torch
from transformers import BertForMaskedLM

from explainable_soft_prompts.analysis import token_masking_matrix, token_masking_matrix_per_variant
from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.models import freeze, tiny_bert_config
from explainable_soft_prompts.training import toy_task_data


def random_family(n_models: int, vocab_size: int, hidden_size: int, layers: int, heads: int) -> list:
    "Random-weight BERT MLMs of one small shape, seeded 0..n-1."
    family = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        family.append(freeze(BertForMaskedLM(tiny_bert_config(vocab_size, hidden_size, layers, heads, max_positions=64))).eval())
    return family


def timed(fn) -> tuple:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def write_json_atomically(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(obj, f, indent=1)
    os.chmod(f.name, 0o644); os.replace(f.name, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--length", type=int, default=16, help="prompt length L")
    parser.add_argument("--examples", type=int, default=300, help="examples in the evaluated split")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2000, help="model vocabulary (output head) size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps timings steady on a shared machine)")
    parser.add_argument("--out", default="outputs/bench/masking.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = tiny_tokenizer()
    data = toy_task_data(tokenizer, n_train=8, n_eval=args.examples, prompt_length=args.length, seed=0)
    split, targets = data.tokenized["test"], data.verbalizer.token_ids
    models = random_family(args.models, max(args.vocab, len(tokenizer)), args.hidden, args.layers, args.heads)
    prompt = torch.randn(args.length, args.hidden, generator=torch.Generator().manual_seed(1))
    config = {k: v for k, v in vars(args).items() if k != "out"}

    methods = {"batched": lambda: token_masking_matrix(models, prompt, split, targets, batch_size=args.batch_size),
               "per_variant": lambda: token_masking_matrix_per_variant(models, prompt, split, targets, batch_size=args.batch_size)}
    methods["batched"]()                                                   # warm-up, not timed
    seconds, max_abs_diff = {name: [] for name in methods}, 0.0
    for repeat in range(args.repeats):
        order = list(methods) if repeat % 2 == 0 else list(methods)[::-1]    # alternate which goes first
        results = {}
        for name in order:
            elapsed, results[name] = timed(methods[name])
            seconds[name].append(elapsed)
        (batched, batched_unmasked), (reference, reference_unmasked) = results["batched"], results["per_variant"]
        diff = max((batched - reference).abs().to_numpy().max(), (batched_unmasked - reference_unmasked).abs().max())
        max_abs_diff = max(max_abs_diff, float(diff))
        print(json.dumps({"repeat": repeat, "order": order, **{f"{n}_s": round(seconds[n][-1], 4) for n in methods},
                          "max_abs_diff": float(diff)}), flush=True)
    median = {name: statistics.median(v) for name, v in seconds.items()}
    summary = {"benchmark": "token_masking_matrix", "config": config, "passes_per_model": {"batched": 1, "per_variant": args.length + 1},
               "median_batched_s": round(median["batched"], 4), "median_per_variant_s": round(median["per_variant"], 4),
               "time_ratio_per_variant_over_batched": round(median["per_variant"] / median["batched"], 3),
               "max_abs_diff": max_abs_diff, "seconds": seconds, "torch": torch.__version__, "machine": platform.machine()}
    print(json.dumps({k: v for k, v in summary.items() if k != "seconds"}), flush=True)
    write_json_atomically(summary, Path(args.out))


if __name__ == "__main__":
    main()
