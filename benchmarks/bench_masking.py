"""Benchmark 2: the token masking matrix (M = 5 models, L = 16 tokens: L + 1 prompt variants per model).

Three ways to compute the same matrix, timed side by side:
- `full_logits_loop`: one variant and one model at a time, each a full evaluation pass over the split with the
  masked LM's ordinary forward, which computes vocabulary logits at every position and then reads the one at
  [MASK] (how a plain Hugging Face evaluation loop does it; the study's method of one pass per model and token);
- `per_variant`: one variant and one model at a time, with this project's forward (head only at [MASK],
  inference mode) - `token_masking_matrix_per_variant`;
- `batched`: this project's `token_masking_matrix`: all L + 1 variants in one pass per model.
The ratios separate what batching the variants gives from what computing the head only at [MASK] gives.
All three must give the same matrix (largest absolute difference printed); the target (3x) is judged on
`batched` over `full_logits_loop`, both fp32.

`--batch-size` is the sequences per forward of the two one-variant loops (the study evaluated in micro-batches of
128 examples). `--batched-batch-size` is that of `batched`, whose forwards hold all L + 1 variants of
`batched-batch-size / (L + 1)` examples: the same as the loops by default, which suits a CPU's caches; a GPU wants
bigger forwards, e.g. (L + 1) x 64.

`--bf16` also times both ends under bf16 autocast, the study's own precision (`precision: bf16-mixed` in its
configs): `full_logits_loop_bf16` and `batched_bf16`. Their ratio is judged against the same 3x target
(`target_met_bf16`), and each one's largest difference from the fp32 reference is printed.

`--forward-sizes A B ...` also times `token_masking_matrix` at each of these sequences per forward, side by side
(fp32, and bf16 with `--bf16`): what a run's `eval_batch_size` does to the report's token masking.

Length sorting: the same L + 1 variants over a split whose texts vary in length (uniform 8 to `--text-length`
tokens, as tweets do), evaluated in batches of similar length (`split_loss_accuracy`'s default) against batches
in the given order, padded to their longest text.

    python benchmarks/bench_masking.py [--shape family] [--models 5 --length 16 --examples 256 --repeats 3]
"""
from __future__ import annotations

import argparse, sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import SHAPES, agreement, autocast, compare, emit, full_logits_at_mask, machine, random_family, target, write_json  # noqa: E402

from explainable_soft_prompts.analysis import token_masking_matrix, token_masking_matrix_per_variant, token_masking_variants, zero_rows  # noqa: E402
from explainable_soft_prompts.data import TokenizedSplit, batch_indices, collate  # noqa: E402
from explainable_soft_prompts.training import split_loss_accuracy  # noqa: E402


def random_split(n: int, text_length: int, vocab_size: int, seed: int = 0) -> TokenizedSplit:
    "A tokenised split of random texts of one length ending in [MASK] [SEP], binary labels."
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, vocab_size, (n, text_length), generator=gen)
    ids[:, 0], ids[:, -2], ids[:, -1] = 2, 4, 3
    return TokenizedSplit([row.tolist() for row in ids], torch.randint(2, (n,), generator=gen), torch.full((n,), text_length - 2))


def varied_split(n: int, max_length: int, vocab_size: int, seed: int = 0) -> TokenizedSplit:
    "A tokenised split of random texts of 8 to `max_length` tokens ending in [MASK] [SEP], binary labels."
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, max_length + 1, (n,), generator=gen).tolist()
    rows = [[2] + torch.randint(10, vocab_size, (k - 3,), generator=gen).tolist() + [4, 3] for k in lengths]
    return TokenizedSplit(rows, torch.randint(2, (n,), generator=gen), torch.tensor([k - 2 for k in lengths]))


@torch.inference_mode()
def full_logits_loss(model, prompt, split, target_ids, batch_size: int, device="cpu", bf16: bool = False) -> float:
    "Mean loss over `split`: the ordinary masked-LM forward (logits at every position), read at [MASK]."
    total = 0.0
    for indices in batch_indices(len(split), batch_size):
        batch = collate(split, indices)
        with autocast(device, bf16):
            at_mask = full_logits_at_mask(model, prompt, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "mask_positions")))
        total += F.cross_entropy(at_mask.float(), target_ids.to(device)[batch["labels"].to(device)], reduction="sum").item()
    return total / len(split)


def full_logits_matrix(models, prompt, split, target_ids, batch_size, device="cpu", bf16: bool = False) -> torch.Tensor:
    "`[M, L + 1]`: unmasked loss, then each token zeroed; one full pass per model and variant."
    variants = [prompt] + [zero_rows(prompt, [i]) for i in range(prompt.shape[0])]
    return torch.tensor([[full_logits_loss(m, v, split, target_ids, batch_size, device, bf16) for v in variants] for m in models])


def as_tensor(result) -> torch.Tensor:
    matrix, unmasked = result
    return torch.cat([torch.tensor(unmasked.to_numpy())[:, None], torch.tensor(matrix.to_numpy())], 1).float()


def batched_matrix(models, prompt, split, target_ids, batch_size, device="cpu", bf16: bool = False) -> torch.Tensor:
    "`[M, L + 1]` from `token_masking_matrix`: all L + 1 variants share each forward of `batch_size` sequences."
    return as_tensor(token_masking_matrix(models, prompt, split, target_ids, batch_size=batch_size, device=device, bf16=bf16))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="family", choices=list(SHAPES))
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--length", type=int, default=16, help="prompt length L")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--text-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per forward of the one-variant loops")
    parser.add_argument("--batched-batch-size", type=int, default=None, help="sequences per forward of the batched variants (default: --batch-size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="also time the full-logits loop and the batched matrix under bf16 autocast")
    parser.add_argument("--forward-sizes", type=int, nargs="*", default=[], help="also time the batched matrix at these sequences per forward")
    parser.add_argument("--out", default="outputs/bench/masking.json")
    args = parser.parse_args(argv)
    models = random_family(args.models, args.shape, args.device)
    split = random_split(args.examples, args.text_length, SHAPES[args.shape]["vocab_size"])
    targets = torch.tensor([5, 6])
    prompt = torch.randn(args.length, SHAPES[args.shape]["hidden_size"], generator=torch.Generator().manual_seed(1))
    batched_batch_size = args.batched_batch_size or args.batch_size
    def batched(bf16=False): return batched_matrix(models, prompt, split, targets, batched_batch_size, args.device, bf16)
    def full_logits(bf16=False): return full_logits_matrix(models, prompt, split, targets, args.batch_size, args.device, bf16)
    methods = {"full_logits_loop": full_logits,
               "per_variant": lambda: as_tensor(token_masking_matrix_per_variant(models, prompt, split, targets, batch_size=args.batch_size, device=args.device)),
               "batched": batched}
    if args.bf16: methods.update(full_logits_loop_bf16=lambda: full_logits(bf16=True), batched_bf16=lambda: batched(bf16=True))
    median, results, seconds = compare(methods, args.repeats, args.device, log=emit)
    diff = max(float((results[a] - results["batched"]).abs().max()) for a in ("full_logits_loop", "per_variant"))
    record = {"benchmark": "token_masking_matrix", "shape": args.shape, "models": args.models, "prompt_length": args.length,
              "examples": args.examples, "text_tokens": args.text_length, "batch_size": args.batch_size, "batched_batch_size": batched_batch_size,
              **{f"{k}_s": round(v, 4) for k, v in median.items()},
              "speedup_batched_over_full_logits_loop": round(median["full_logits_loop"] / median["batched"], 3),
              "speedup_batched_over_per_variant": round(median["per_variant"] / median["batched"], 3),
              "max_abs_diff": diff}
    record.update(agreement(False, diff))
    record.update(target(record["speedup_batched_over_full_logits_loop"], at_least=3.0, same_numbers=record["same_numbers"]))     # the study's one-variant method
    if args.bf16:
        speedup_bf16 = round(median["full_logits_loop_bf16"] / median["batched_bf16"], 3)
        record.update({"speedup_batched_bf16_over_full_logits_loop_bf16": speedup_bf16,
                       "speedup_batched_bf16_over_full_logits_loop": round(median["full_logits_loop"] / median["batched_bf16"], 3),
                       "max_abs_diff_bf16": float((results["full_logits_loop"] - results["batched_bf16"]).abs().max()),
                       "max_abs_diff_full_logits_loop_bf16": float((results["full_logits_loop"] - results["full_logits_loop_bf16"]).abs().max())})
        bf16_agrees = agreement(True, record["max_abs_diff_bf16"], record["max_abs_diff_full_logits_loop_bf16"])
        record.update({f"{k}_bf16": v for k, v in {**bf16_agrees, **target(speedup_bf16, at_least=3.0, same_numbers=bf16_agrees["same_numbers"])}.items()})
    emit(record)
    varied = varied_split(args.examples, args.text_length, SHAPES[args.shape]["vocab_size"])
    variants = token_masking_variants(prompt)                                   # unmasked, then token i zeroed
    sorting = {"benchmark": "length_sorted_evaluation", "shape": args.shape, "models": args.models, "variants": args.length + 1,
               "examples": args.examples, "text_tokens": f"8..{args.text_length}"}
    if batched_batch_size >= len(variants) * args.examples:       # one forward holds every sequence: the order cannot matter
        sort_seconds = {}
        sorting["skipped"] = f"{batched_batch_size} sequences per forward hold all {len(variants) * args.examples}: nothing to sort"
    else:
        ordered = {"length_sorted": lambda: split_loss_accuracy(models, variants, varied, targets, batched_batch_size, args.device)[0],
                   "given_order": lambda: split_loss_accuracy(models, variants, varied, targets, batched_batch_size, args.device, length_sorted=False)[0]}
        sort_median, sort_results, sort_seconds = compare(ordered, args.repeats, args.device)
        sorting.update({**{f"{k}_s": round(v, 4) for k, v in sort_median.items()},
                        "speedup_sorted_over_given_order": round(sort_median["given_order"] / sort_median["length_sorted"], 3),
                        "max_abs_diff": float((sort_results["given_order"] - sort_results["length_sorted"]).abs().max())})
        sorting.update(agreement(False, sorting["max_abs_diff"]))
    emit(sorting)
    forward_sizes, size_seconds = forward_size_record(args, models, prompt, split, targets) if args.forward_sizes else (None, {})
    write_json({"record": record, "length_sorting": sorting, "forward_sizes": forward_sizes, "seconds": {**seconds, **sort_seconds, **size_seconds},
                "machine": machine(), "config": vars(args)}, args.out)


def forward_size_record(args, models, prompt, split, targets) -> tuple:
    "`token_masking_matrix` at each of `args.forward_sizes` sequences per forward, timed side by side; each size's speed-up over the first."
    timed = [(dtype, size) for dtype in ["fp32"] + (["bf16"] * args.bf16) for size in args.forward_sizes]
    methods = {f"{dtype}_{size}": lambda size=size, bf16=dtype == "bf16": batched_matrix(models, prompt, split, targets, size, args.device, bf16)
               for dtype, size in timed}
    median, results, seconds = compare(methods, args.repeats, args.device)
    first = args.forward_sizes[0]
    record = {"benchmark": "masking_forward_size", "shape": args.shape, "models": args.models, "variants": args.length + 1,
              "examples": args.examples, "text_tokens": args.text_length, **{f"{k}_s": round(v, 4) for k, v in median.items()},
              **{f"speedup_{dtype}_{size}_over_{dtype}_{first}": round(median[f"{dtype}_{first}"] / median[f"{dtype}_{size}"], 3)
                 for dtype, size in timed if size != first},
              "max_abs_diff_fp32": max(float((results[f"fp32_{n}"] - results[f"fp32_{first}"]).abs().max()) for n in args.forward_sizes)}
    emit(record)
    return record, seconds


if __name__ == "__main__":
    main()
