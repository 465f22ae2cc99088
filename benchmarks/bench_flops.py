"""Benchmark 4: hardware efficiency. Achieved FLOP/s of the training step against the machine's dense matmul FLOP/s.

The step's FLOPs are counted from the model shape (the frozen models get no weight gradients, so the backward
pass costs one matmul per linear layer, for the input gradient, and two per attention matmul):
  per sequence of S = L + T positions and per layer: linear 2*S*(4*H^2 + 2*H*F), attention 4*S^2*H;
  but the last layer runs its query, attention output and feed-forward at [MASK] only (`PromptedMaskedLM`):
  keys and values 2*S*2*H^2, the rest 2*(2*H^2 + 2*H*F), attention 4*S*H;
  per example: the MLM head at [MASK] only, 2*H^2 + 2*H*V;
  step = 2 * linear + 3 * attention + 2 * head (forward + backward), times M models.
The machine's figure is the median FLOP/s of a large square fp32 (or bf16) matmul with the same threads.

    python benchmarks/bench_flops.py [--shapes family bert-base] [--models 5]
"""
from __future__ import annotations

import argparse, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SHAPES, compare, emit, machine, random_family, step_inputs, sync, write_json  # noqa: E402
from bench_training import DEFAULT_BATCH, make_step, same_steps  # noqa: E402


def step_flops(shape: str, n_models: int, batch_size: int, text_length: int, prompt_length: int = 16) -> float:
    s = SHAPES[shape]
    H, F, V, layers, S = s["hidden_size"], s["intermediate_size"], s["vocab_size"], s["num_hidden_layers"], prompt_length + text_length
    linear = (layers - 1) * 2 * S * (4 * H * H + 2 * H * F) + 2 * S * 2 * H * H + 2 * (2 * H * H + 2 * H * F)
    attention = (layers - 1) * 4 * S * S * H + 4 * S * H
    head = 2 * H * H + 2 * H * V
    return n_models * batch_size * (2 * linear + 3 * attention + 2 * head)


def matmul_flops(device="cpu", dtype=torch.float32, n: int | None = None, repeats: int = 10) -> float:
    "Dense n x n matrix product FLOP/s (n: 2048 on a CPU, 8192 on a GPU, where a smaller product would time the launch)."
    n = n or (8192 if torch.device(device).type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2): a @ b
    times = []
    for _ in range(repeats):
        sync(device); start = time.perf_counter(); a @ b; sync(device); times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["family", "bert-base"], choices=list(SHAPES))
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch", type=int, default=None, help="examples per step (default per shape)")
    parser.add_argument("--out", default="outputs/bench/flops.json")
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak = matmul_flops(args.device, dtype)
    emit({"benchmark": "dense_matmul", "dtype": str(dtype), "gflops": round(peak / 1e9, 2)})
    records = []
    for shape in args.shapes:
        batch_size, text_length = DEFAULT_BATCH[shape]
        batch_size = args.batch or batch_size
        models = random_family(args.models, shape, args.device)       # fp32 weights: --bf16 is autocast over them, as training runs it
        batch, targets, prompt_init = step_inputs(shape, batch_size, text_length, args.device)
        # both paths, timed side by side: the loop (train_prompt's default on CPU) and the stacked family (on CUDA)
        methods = {path: make_step(models, path, batch, targets, prompt_init, args.device, args.bf16) for path in ("loop", "vectorized")}
        median, results, seconds = compare(methods, args.repeats, args.device)
        agrees = same_steps(results, "loop", args.bf16)                   # both paths did the same work
        flops = step_flops(shape, args.models, batch_size, text_length)
        for path in methods:
            record = {"benchmark": "training_step_efficiency", "shape": shape, "models": args.models, "batch": batch_size, "text_tokens": text_length,
                      "path": path, "step_s": round(median[path], 4), "step_gflop": round(flops / 1e9, 2),
                      "achieved_gflops": round(flops / median[path] / 1e9, 2), "matmul_gflops": round(peak / 1e9, 2),
                      "efficiency_achieved_over_matmul": round(flops / median[path] / peak, 3), **agrees}
            emit(record); records.append({**record, "seconds": seconds[path]})
    write_json({"records": records, "matmul_flops": peak, "machine": machine(), "config": vars(args)}, args.out)


if __name__ == "__main__":
    main()
