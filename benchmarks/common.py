"""Shared pieces of the benchmarks: model shapes, random families, side-by-side timing, JSON output.

Every benchmark times two ways of doing the same work in one process, alternating which goes first, several
repetitions, and reports medians, their ratio, and a check that both give the same numbers. Where the speed
issue sets a target for a ratio, the record also carries the target and whether this run met it.
"""
from __future__ import annotations

import json, os, platform, statistics, tempfile, time
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from explainable_soft_prompts.models import freeze

# the offline family's shape (families/tweets-mini) and BERT-base (the MultiBERTs' shape)
SHAPES = {
    "family": dict(vocab_size=8192, hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256, max_position_embeddings=192),
    "bert-base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
}


def random_family(n_models: int, shape: str, device="cpu", dtype=torch.float32) -> list:
    "Frozen random-weight BERT masked LMs of one shape, seeded 0..n-1 (speed does not depend on the weights)."
    family = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        config = BertConfig(**SHAPES[shape], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        family.append(freeze(BertForMaskedLM(config)).to(device=device, dtype=dtype).eval())
    return family


def random_batch(batch_size: int, text_length: int, vocab_size: int, n_labels: int = 2, seed: int = 0, device="cpu") -> dict:
    "A batch like `collate` makes: token ids ending in [MASK] (id 4) and [SEP] (id 3), full attention, labels."
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, vocab_size, (batch_size, text_length), generator=gen)
    ids[:, 0], ids[:, -2], ids[:, -1] = 2, 4, 3
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "mask_positions": torch.full((batch_size,), text_length - 2, device=device),
            "labels": torch.randint(n_labels, (batch_size,), generator=gen).to(device)}


def step_inputs(shape: str, batch_size: int, text_length: int, device="cpu", prompt_length: int = 16) -> tuple:
    "`(batch, target_ids, initial prompt)` for one training step at `shape`: the same in every benchmark."
    batch = random_batch(batch_size, text_length, SHAPES[shape]["vocab_size"], device=device)
    return batch, torch.tensor([5, 6], device=device), bench_prompt(SHAPES[shape]["hidden_size"], device, prompt_length)


def bench_prompt(hidden_size: int, device="cpu", prompt_length: int = 16) -> torch.Tensor:
    "The initial prompt every benchmark step starts from: `randn(prompt_length, hidden_size)`, seed 1."
    return torch.randn(prompt_length, hidden_size, generator=torch.Generator().manual_seed(1)).to(device)


def full_logits_at_mask(model, prompt, input_ids, attention_mask, mask_positions) -> torch.Tensor:
    """Logits `[B, V]` at [MASK] from the masked LM's ordinary forward, which computes the vocabulary head at every
    position and the last layer everywhere (how a plain Hugging Face loop reads a masked LM; the study's design)."""
    inputs = torch.cat([prompt.to(input_ids.device)[None].expand(len(input_ids), -1, -1), model.get_input_embeddings()(input_ids)], 1)
    full_mask = torch.cat([attention_mask.new_ones(len(input_ids), prompt.shape[0]), attention_mask], 1)
    logits = model(inputs_embeds=inputs, attention_mask=full_mask).logits                 # [B, L + T, V]
    return logits[torch.arange(len(input_ids), device=input_ids.device), mask_positions + prompt.shape[0]]


def sync(device):
    if torch.device(device).type == "cuda": torch.cuda.synchronize()


def compare(methods: dict, repeats: int, device="cpu", warmup: int = 1, log=None) -> tuple:
    "Time each method `repeats` times, alternating the order; `(median seconds by name, last results by name)`."
    results = {}
    for name, fn in methods.items():
        for _ in range(warmup): results[name] = fn()
    seconds = {name: [] for name in methods}
    for repeat in range(repeats):
        order = list(methods) if repeat % 2 == 0 else list(methods)[::-1]
        for name in order:
            sync(device); start = time.perf_counter()
            results[name] = methods[name]()
            sync(device); seconds[name].append(time.perf_counter() - start)
        if log: log({"repeat": repeat, **{f"{n}_s": round(seconds[n][-1], 5) for n in methods}})
    return {name: statistics.median(v) for name, v in seconds.items()}, results, seconds


# the vector extensions that set a CPU's arithmetic rate, widest last: a run's figures compare only with runs on the same kind
VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU's model name, family and model numbers and vector extensions, read from `/proc/cpuinfo` (Linux; empty
    elsewhere). This project's machines change between sessions (a 2-core AMD EPYC of family 23, AVX2, and of family
    26, AVX-512, gave different figures), so every benchmark file records which one ran it."""
    if cpuinfo is None:
        try: cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError: return {}
    first = cpuinfo.split("\n\n")[0]
    field = lambda name: next((line.split(":", 1)[1].strip() for line in first.splitlines() if line.split(":")[0].strip() == name), None)
    flags = set((field("flags") or "").split())
    return {"cpu_model": field("model name"), "cpu_family": field("cpu family"), "cpu_model_number": field("model"),
            "vector_extensions": [e for e in VECTOR_EXTENSIONS if e in flags]}


def machine() -> dict:
    info = {"torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads(), "cpus": os.cpu_count(), **cpu_info()}
    if torch.cuda.is_available(): info["gpu"] = torch.cuda.get_device_name()
    return info


def emit(record: dict):
    print(json.dumps(record, default=str), flush=True)


def emit_record(record: dict) -> dict:
    "Print `record` as a JSON line without its per-repeat `seconds` (kept in the JSON file); returns it."
    emit({k: v for k, v in record.items() if k != "seconds"})
    return record


def write_json(obj, path) -> Path:
    "Write `obj` as JSON to `path` atomically."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(obj, f, indent=1, default=str)
    os.chmod(f.name, 0o644); os.replace(f.name, path)
    return path


# how far two ways of doing the same work may differ (largest absolute loss difference, largest gradient difference
# relative to the largest gradient) and still count as the same numbers: in fp32 they differ by about 1e-6 here;
# under bf16 autocast each way rounds its own products, so the bound is looser
TOLERANCE = {False: 1e-4, True: 5e-2}


def agreement(bf16: bool, *differences: float) -> dict:
    "`same_numbers`: do both ways agree, every one of `differences` within `TOLERANCE` for the run's precision?"
    tolerance = TOLERANCE[bool(bf16)]
    return {"tolerance": tolerance, "same_numbers": all(d <= tolerance for d in differences)}


def target(figure: float, at_least: float | None = None, at_most: float | None = None, same_numbers: bool = True) -> dict:
    """The speed issue's target for `figure` and whether this run met it (nothing when the issue sets none). A target
    counts as met only when both ways also gave the same numbers (`same_numbers`, from `agreement`)."""
    if at_least is None and at_most is None: return {}
    met = (at_least is None or figure >= at_least) and (at_most is None or figure <= at_most)
    return {"target": f">= {at_least}" if at_least is not None else f"<= {at_most}", "target_met": bool(met and same_numbers)}


def autocast(device, bf16: bool):
    from contextlib import nullcontext
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if bf16 else nullcontext()
