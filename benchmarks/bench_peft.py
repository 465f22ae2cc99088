"""Benchmark 3: one-model prompt tuning step, this project against Hugging Face PEFT's prompt tuning, same model,
same batch, same prompt, same optimizer (AdamW on the prompt only).

PEFT has no masked-LM task type. Its prompt tuning runs a `BertForMaskedLM` under `FEATURE_EXTRACTION`, which
prepends the prompt to the input embeddings and returns the model's output: vocabulary logits at every position.
The loss is then the cross-entropy of the label word's logit at [MASK] (position shifted by the prompt length),
the same loss as here, so the comparison is one full training step (forward, loss, backward, AdamW) each.
Both must give the same loss and prompt gradient (checked).

`--batch` sets the examples per step (default: 32 for the family's shape, 8 for BERT-base, what suits a 2-core CPU;
the study's micro-batches were 3 to 128); several values are timed one after the other.

    python benchmarks/bench_peft.py [--shapes family bert-base] [--batch 8 32] [--repeats 5]
"""
from __future__ import annotations

import argparse, sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import SHAPES, agreement, autocast, compare, emit, machine, random_family, step_inputs, target, write_json  # noqa: E402

from explainable_soft_prompts.prompt import PromptedMaskedLM, SoftPrompt  # noqa: E402

DEFAULT_BATCH = {"family": (32, 64), "bert-base": (8, 64)}


def training_step(weight, prompt_init, logits_at_mask, batch, targets, device, bf16):
    """One step from `prompt_init` each call: reset `weight`, logits at [MASK] from `logits_at_mask()`, cross-entropy,
    backward, AdamW on `weight`; returns (loss, gradient). The same for both methods, so only the forward differs."""
    def step():
        with torch.no_grad(): weight.copy_(prompt_init)
        weight.grad = None
        optimizer = torch.optim.AdamW([weight], lr=0.1)
        with autocast(device, bf16): logits = logits_at_mask()
        loss = F.cross_entropy(logits.float(), targets[batch["labels"]])
        loss.backward(); grad = weight.grad.detach().clone(); optimizer.step()
        return loss.detach().float().cpu(), grad.float().cpu()
    return step


def ours(model, prompt_init, batch, targets, device, bf16):
    prompt = SoftPrompt(prompt_init).to(device)
    forward = lambda: PromptedMaskedLM(model)(prompt(), batch["input_ids"], batch["attention_mask"], batch["mask_positions"])
    return training_step(prompt.weight, prompt_init, forward, batch, targets, device, bf16)


def peft_step(model, prompt_init, batch, targets, device, bf16):
    from peft import PromptTuningConfig, get_peft_model
    config = PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=prompt_init.shape[0], token_dim=model.config.hidden_size,
                                num_transformer_submodules=1, num_attention_heads=model.config.num_attention_heads,
                                num_layers=model.config.num_hidden_layers)
    peft_model = get_peft_model(model, config)
    rows = torch.arange(len(batch["input_ids"]), device=batch["input_ids"].device)
    def forward():
        logits = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits[rows, batch["mask_positions"] + prompt_init.shape[0]]
    return training_step(peft_model.prompt_encoder["default"].embedding.weight, prompt_init, forward, batch, targets, device, bf16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["family", "bert-base"], choices=list(SHAPES))
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="examples per step (default: by shape)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", default="outputs/bench/peft.json")
    args = parser.parse_args(argv)
    records = []
    for shape, batch_size in [(shape, b) for shape in args.shapes for b in (args.batch or DEFAULT_BATCH[shape][:1])]:
        text_length = DEFAULT_BATCH[shape][1]
        model = random_family(1, shape, args.device)[0]          # fp32 weights: --bf16 is autocast over them, as the library runs it
        batch, targets, prompt_init = step_inputs(shape, batch_size, text_length, args.device)
        methods = {"ours": ours(model, prompt_init, batch, targets, args.device, args.bf16),
                   "peft": peft_step(model, prompt_init, batch, targets, args.device, args.bf16)}
        median, results, seconds = compare(methods, args.repeats, args.device)
        record = {"benchmark": "prompt_tuning_step_vs_peft", "shape": shape, "batch": batch_size, "text_tokens": text_length, "bf16": args.bf16,
                  "ours_s": round(median["ours"], 4), "peft_s": round(median["peft"], 4),
                  "time_ratio_ours_over_peft": round(median["ours"] / median["peft"], 3),
                  "loss_diff": float((results["ours"][0] - results["peft"][0]).abs()),
                  "max_relative_grad_diff": float((results["ours"][1] - results["peft"][1]).abs().max() / results["ours"][1].abs().max()),
                  "compared": "full step: forward, CE at [MASK], backward, AdamW on the prompt; PEFT under FEATURE_EXTRACTION computes logits at every position"}
        record.update(agreement(args.bf16, record["loss_diff"], record["max_relative_grad_diff"]))
        record.update(target(record["time_ratio_ours_over_peft"], at_most=1.0, same_numbers=record["same_numbers"]))
        emit(record); records.append({**record, "seconds": seconds})
    write_json({"records": records, "machine": machine(), "config": vars(args)}, args.out)


if __name__ == "__main__":
    main()
