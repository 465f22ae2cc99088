"""Benchmark 1: one multi-model training step, the vectorised path (`StackedFamily`: the models' weights stacked,
run as one batched BERT, or with `vmap` for `--path vmap`) against loops over the models, for M = 1, 2, 5, 10,
on the offline family's shape (8 and 32 examples a step: the study's micro-batches at M = 5) and on BERT-base
(4 examples). Two loops serve as references:
- `loop`: `family_losses_loop`, one model after the other through this project's forward, which runs the last
  layer and the vocabulary head at [MASK] only (what `train_prompt` uses on CPU);
- `full_logits_loop`: one model after the other through the masked LM's ordinary forward, which computes the last
  layer and the vocabulary head at every position and is then read at [MASK] (the study's design, and what a plain
  Hugging Face loop does). It is slow at BERT-base, so by default it is timed there at M = 5 only.
The speed issue's targets are judged against `loop`, the stricter reference on a CPU (on the H200 at M = 5 and 4 examples the
full-logits loop was the faster one, the loop at 0.90x of it: there `loop` was the lenient reference); the record also says whether they
hold against `full_logits_loop`. `speedup_loop_over_full_logits_loop` is what reading at [MASK] alone gives.

On a CPU the stacked family splits a step with enough rows (64 a thread, examples x models: 32 examples at M = 5
on 2 threads) over threads, each part's forward and backward on one thread (`StackedFamily.row_parts_here`). There
the record also times the stack with the batch whole (`vectorized_whole`, `row_threads=1`): `speedup_row_split` is
what the split gives the stack, `speedup_vectorized_whole_over_loop` the stacking's own speed-up.

A step is what `train_prompt` does per optimizer step: forward through every model, the mean of the per-model
losses at [MASK], backward to the prompt, AdamW step on the prompt. Every method starts from the same prompt and
optimizer state and must give the same losses and gradient as `loop` (checked, largest difference printed).

Where the speed-up comes from: both paths also take a near-empty step (1 example of 4 text tokens), whose time is
mostly the fixed cost of running the operations (Python, dispatch, autograd), which the vectorised path pays once
for all models. The record splits the speed-up in two: `speedup_bound_at_equal_work_time`, the speed-up if the
work above a near-empty step took the stacked path as long as the loop (what saving the fixed cost alone gives),
and `work_time_vectorized_over_loop`, how long that work takes it over the loop's (above 1: slower per unit of work).

Memory: each path runs in a fresh subprocess at M = 5 that builds the models, sets up its path (the vectorised
one stacks the weights), then takes steps; resident memory (VmRSS) after the setup and its peak (VmHWM) are
compared with the weights' size. The vectorised path re-points every model at its slice of the stack, one
tensor at a time, so neither after nor during the setup may it hold a second copy (difference < half the
weights; after the setup also with freed heap pages handed back first, `malloc_trim`; the setup's peak only where
half the weights exceed the 32 MiB that RSS resolves here: `no_second_copy_during_setup` is None at the family's
size). The peak during the steps is reported too; it adds the activations, which differ between the paths.

Stacked prompts: prompts that share models and data order (the study's init-seed variants train 3 prompts on the
same 5 models and batches) can be trained in one pass, stacked along the batch ([P, L, H] prompts, P*B rows per
model; `train_prompts`). Timed at M = 5 and every batch size: one stacked step of P prompts against P single-prompt
steps, with identical losses and gradients, through the models' path `train_prompts` takes on the device (the
stacked family on CUDA, the loop on CPU; `--stacked-prompts-path` overrides). On a CPU at the family's shape only
by default (`--stacked-prompts-shapes`): at BERT-base it cost `make bench` about 80 s for a figure that 16 runs had
settled (0.97-1.22x). Experiments stack them where this pays (`stack_prompts`).

Real data (`--real-data [REPEATS]`, in `make bench`): the first steps of the offline default's training split, as
training draws them, through the shipped family's five models. Two figures:
- padding: a step of 8 or 32 real examples pads every text to the longest. The batched BERT can run its layers on
  the real tokens alone (`unpad`, attention in groups of at most 16 rows of similar length): the loop, the batched BERT on
  the padded rows and on the real tokens, with the same losses and gradients. `--random-lengths` times the same on
  random batches of texts of random length at every shape (for a GPU, which has no copy of the data);
- micro-batches: a step too big for one forward is split into micro-batches, each padded to its own longest text.
  `train_prompts` takes the step's examples longest first (`micro_batch_indices`), so texts of similar length share
  a micro-batch: steps of 32 in micro-batches of 8 (the device's path), longest first against the drawn order and
  against the step in one forward, with the same gradients; padded text tokens over real ones in the timed steps
  and over the whole epoch.

    python benchmarks/bench_training.py [--shapes family bert-base] [--models 1 2 5 10] [--batch B ...] [--repeats N] [--full-logits M ...]
        [--stacked-prompts 3] [--stacked-prompts-path auto|loop|vectorized] [--stacked-prompts-shapes SHAPE ...] [--path auto|bert|vmap]
        [--real-data [REPEATS]] [--real-data-only] [--random-lengths]
"""
from __future__ import annotations

import argparse, ctypes, json, resource, subprocess, sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SHAPES, agreement, autocast, bench_prompt, compare, emit, emit_record, full_logits_at_mask, machine, random_batch, random_family, step_inputs, target, write_json  # noqa: E402

import torch.nn.functional as F  # noqa: E402

from explainable_soft_prompts.data import collate, epoch_batches, micro_batch_indices, padded_tokens  # noqa: E402
from explainable_soft_prompts.prompt import SoftPrompt  # noqa: E402
from explainable_soft_prompts.training import StackedFamily, TrainConfig, family_losses_loop, model_inputs  # noqa: E402

# micro-batches: the study's 5-model runs took 8 examples a step (imdb, mnli) or 32 (emotion: tweets, short texts
# like the family's); BERT-base's scaled down to what a 2-core CPU steps in seconds
DEFAULT_BATCH = {"family": (32, 64), "bert-base": (4, 64)}   # (examples, text tokens); memory at these
SMALLER_BATCHES = {"family": (8,), "bert-base": ()}           # timed too, before the default, unless --batch is given
# the family's steps take 30-300 ms and vary by 10-20% on a shared CPU, so they get more repeats. BERT-base's take
# 1-10 s a method; 4 repeats (each method first in two of them) keep `make bench` under 15 minutes with room to spare:
# with 5 its runs took 741-862 s, BERT-base's training steps about 250 s of that
DEFAULT_REPEATS = {"family": 9, "bert-base": 4}
# the stacked-prompt step at BERT-base takes 13-15 s each way (three prompts), long enough that one timed repeat after
# the warm-up serves, and with three calls of both ways (warm-up included) it was the costliest item of `make bench`
STACKED_REPEATS = {**DEFAULT_REPEATS, "bert-base": 1}
# shapes whose stacked-prompt step is timed by default on a CPU (every shape on CUDA)
STACKED_SHAPES_CPU = ("family",)
REAL_DATA_REPEATS = 5                                         # timed steps per way for the real-data figures


def stacked_prompt_shapes(chosen, device) -> tuple:
    "Shapes at which the stacked-prompt step is timed: `chosen`, or `STACKED_SHAPES_CPU` on a CPU and every shape on CUDA."
    if chosen: return tuple(chosen)
    return tuple(SHAPES) if torch.device(device).type == "cuda" else STACKED_SHAPES_CPU


def training_target(shape: str, n_models: int, device) -> float | None:
    "The speed issue's least speed-up: 1.5x at M = 5 (family shape on CPU, BERT-base on GPU), 0.95x at every M at BERT-base on CPU."
    if torch.device(device).type == "cuda": return 1.5 if n_models == 5 else None
    return 0.95 if shape == "bert-base" else 1.5 if n_models == 5 else None


def family_losses_full_logits(models, prompt, batch, target_ids) -> torch.Tensor:
    "Per-model mean losses `[M]` through each masked LM's ordinary forward (logits at every position): the study's design."
    inputs, targets = model_inputs(batch, prompt.device), target_ids.to(prompt.device)[batch["labels"].to(prompt.device)]
    return torch.stack([F.cross_entropy(full_logits_at_mask(m, prompt, *inputs).float(), targets) for m in models])


METHODS = ("full_logits_loop", "loop", "vectorized", "vectorized_whole")


# a near-empty step: one example of 4 text tokens (with the 16-token prompt). Its time is mostly the cost of
# running the operations at all (Python, dispatch, autograd, thread start-up), which stacking pays once for all
# models, and little arithmetic
NEAR_EMPTY = (1, 4)
NEAR_EMPTY_REPEATS = {"family": 9, "bert-base": 3}          # BERT-base's near-empty step still reads 0.4 GB of weights a model


def near_empty_seconds(models, shape: str, repeats: int, device="cpu", bf16=False, path="auto") -> dict:
    "Median seconds of a near-empty step (`NEAR_EMPTY`) by the loop and the vectorised path, timed side by side."
    batch, targets, prompt_init = step_inputs(shape, *NEAR_EMPTY, device)
    methods = {name: make_step(models, name, batch, targets, prompt_init, device, bf16, path) for name in ("loop", "vectorized")}
    return compare(methods, repeats, device)[0]


def speedup_decomposition(seconds: dict, near_empty: dict) -> dict:
    """Split the vectorised step's speed-up over the loop into what stacking saves per step and what it costs per unit
    of work. `seconds`, `near_empty`: median seconds by method (`loop`, `vectorized`) of the full and the near-empty
    step. The bound is the speed-up if the stacked work above a near-empty step took as long as the loop's; the
    work-time ratio is how long that work takes the stacked path over the loop (above 1: slower per unit of work)."""
    saved = near_empty["loop"] - near_empty["vectorized"]
    above = {name: seconds[name] - near_empty[name] for name in ("loop", "vectorized")}
    # where a step takes no longer than a near-empty one (a GPU at small sizes: launch costs dominate), there is no
    # work above it to compare, and the two figures would be noise or negative: None
    has_work = min(above.values()) > 0 and seconds["loop"] - saved > 0
    return {"near_empty_loop_s": round(near_empty["loop"], 4), "near_empty_vectorized_s": round(near_empty["vectorized"], 4),
            "speedup_bound_at_equal_work_time": round(seconds["loop"] / (seconds["loop"] - saved), 3) if has_work else None,
            "work_time_vectorized_over_loop": round(above["vectorized"] / above["loop"], 3) if has_work else None}


def full_logits_models(shape: str, chosen: list | None) -> tuple:
    "Model counts at which the full-logits loop is timed: `chosen`, or every count at the family's shape and M = 5 at BERT-base."
    if chosen is not None: return tuple(chosen)
    return (5,) if shape == "bert-base" else (1, 2, 5, 10)


def make_step(models, method: str, batch, targets, prompt_init, device, bf16=False, path="auto"):
    """A function doing one training step from a fixed starting state; returns (per-model losses, prompt gradient).
    `method`: `full_logits_loop` (a loop over the models' ordinary forward), `loop` (`family_losses_loop`: a loop
    over this project's forward, last layer and head at [MASK] only), `vectorized` (`StackedFamily`, its rows split
    over threads where it splits them on its own) or `vectorized_whole` (`StackedFamily`, the batch whole: `row_threads=1`)."""
    if method not in METHODS: raise ValueError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    family = StackedFamily(models, path, row_threads=1 if method == "vectorized_whole" else None) if method.startswith("vectorized") else None
    losses_of = family.losses if family else {"full_logits_loop": partial(family_losses_full_logits, models), "loop": partial(family_losses_loop, models)}[method]
    run = training_steps(losses_of, [[batch]], targets, prompt_init, device, bf16)
    def step():
        losses, grads = run()
        return losses[0], grads[0]
    step.family = family
    return step


def row_parts(family, prompt_init, n_examples: int) -> int:
    "How many parts `family` splits a training step of `n_examples` from `prompt_init` into (`StackedFamily.row_parts_here`; 1: the batch whole)."
    return len(family.row_parts_here(prompt_init.clone().requires_grad_(), n_examples))


def stacked_prompts_step(family_losses, batch, targets, prompt_inits, stacked: bool, device="cpu", bf16: bool = False):
    """One training step of P prompts on the same models and batch: one pass over `[P, L, H]` prompts, or P passes.
    `family_losses(prompt, batch, targets)`: per-model losses, `[M]` or `[M, P]` (the loop, or a `StackedFamily`'s)."""
    def step():
        prompts = torch.nn.Parameter(torch.stack(prompt_inits).clone())
        optimizer = torch.optim.AdamW([prompts], lr=0.1)
        if stacked:                                                                   # as `train_prompts` does it
            with autocast(device, bf16): losses = family_losses(prompts, batch, targets).T   # [P, M]
            losses.mean(1).sum().backward()                                        # each prompt's gradient is its own mean loss's
        else:
            losses = []
            for p in range(len(prompt_inits)):                                       # P steps' forward and backward, one after the other
                with autocast(device, bf16): one = family_losses(prompts[p], batch, targets)
                one.mean().backward(); losses.append(one.detach())
            losses = torch.stack(losses)
        grad = prompts.grad.detach().clone()
        optimizer.step()
        return losses.detach().float().cpu(), grad.float().cpu()
    return step


def models_path(models, path: str, device) -> tuple:
    "`(path, family_losses)`: the models' path (`loop` or `vectorized`; auto: what `train_prompts` takes on `device`) and its per-model losses."
    if path == "auto": path = "vectorized" if TrainConfig(device=str(device)).vectorized_here() else "loop"
    return path, StackedFamily(models).losses if path == "vectorized" else partial(family_losses_loop, models)


def bench_stacked_prompts(models, shape: str, n_prompts: int, repeats: int, batch_size: int, text_length: int, device="cpu", bf16=False, path="auto") -> dict:
    """P stacked prompts' step against P single-prompt steps, through the loop over models or the stacked family
    (`path`; auto: what `train_prompts` takes on `device`, the stacked family on CUDA and the loop on CPU)."""
    n_models = len(models)
    path, family_losses = models_path(models, path, device)
    batch, targets, _ = step_inputs(shape, batch_size, text_length, device)
    inits = [torch.randn(16, SHAPES[shape]["hidden_size"], generator=torch.Generator().manual_seed(p)).to(device) for p in range(n_prompts)]
    methods = {"separate": stacked_prompts_step(family_losses, batch, targets, inits, False, device, bf16),
               "stacked": stacked_prompts_step(family_losses, batch, targets, inits, True, device, bf16)}
    median, results, seconds = compare(methods, repeats, device)
    return {"benchmark": "stacked_prompts_step", "shape": shape, "models": n_models, "prompts": n_prompts, "batch": batch_size, "text_tokens": text_length, "bf16": bf16, "path": path,
            "separate_s": round(median["separate"], 4), "stacked_s": round(median["stacked"], 4),
            "speedup_stacked_over_separate": round(median["separate"] / median["stacked"], 3),
            **same_steps(results, "separate", bf16), "seconds": seconds}


def micro_batch_plans(split, batch_size: int, micro: int, steps: int, seed: int = TrainConfig.seed) -> dict:
    """The first `steps` steps of epoch 0 as `train_prompts` draws them (seed `seed`), each as micro-batches three ways:
    `one_forward` (the step in one forward), `drawn_order` (micro-batches of `micro` in the drawn order, as before)
    and `longest_first` (`micro_batch_indices`, what `train_prompts` does)."""
    order, lengths = epoch_batches(len(split), batch_size, seed, 0)[:steps], split.lengths
    return {"one_forward": [[step] for step in order],
            "drawn_order": [[step[i:i + micro] for i in range(0, len(step), micro)] for step in order],
            "longest_first": [micro_batch_indices(step, lengths, micro) for step in order]}


def padding_ratios(plans: dict, lengths) -> dict:
    "Text tokens each plan's forwards read (padding included) over the real ones."
    real = sum(lengths[i] for step in plans["one_forward"] for i in step[0])
    return {name: round(sum(padded_tokens(lengths, chunks) for chunks in plan) / real, 3) for name, plan in plans.items()}


def training_steps(family_losses, steps, target_ids, prompt_init, device="cpu", bf16=False):
    """A function taking the optimizer steps `steps` (each a list of collated micro-batches), each from `prompt_init`,
    gradients summed over a step's micro-batches as `train_prompts` does; returns (losses, gradients) `[steps, ...]`.
    The batches go to `family_losses` where they are, as `train_prompts` hands them over (collated on the CPU): each
    path moves its inputs itself, and the batched BERT makes its layout from the CPU's batch, without a device sync."""
    def run():
        losses, grads = [], []
        for step in steps:
            prompt = SoftPrompt(prompt_init).to(device)
            optimizer = torch.optim.AdamW(prompt.parameters(), lr=0.1)
            n_examples, step_losses = sum(len(b["labels"]) for b in step), 0
            for batch in step:
                with autocast(device, bf16):
                    model_losses = family_losses(prompt(), batch, target_ids)
                share = len(batch["labels"]) / n_examples
                (model_losses.mean() * share).backward(); step_losses = step_losses + model_losses.detach().float() * share
            losses.append(step_losses); grads.append(prompt.weight.grad.detach().clone())
            optimizer.step()
        return torch.stack(losses).float().cpu(), torch.stack(grads).float().cpu()
    return run


def same_steps(results: dict, reference: str, bf16: bool = False) -> dict:
    """The largest loss difference and relative gradient difference of every method's steps from `reference`'s, and
    whether they are within the tolerance for the precision (`agreement`)."""
    loss, grad = (lambda n: results[n][0]), (lambda n: results[n][1])
    differences = {"max_loss_diff": max(float((loss(reference) - loss(n)).abs().max()) for n in results),
                   "max_relative_grad_diff": max(float((grad(reference) - grad(n)).abs().max() / grad(reference).abs().max()) for n in results)}
    return {**differences, **agreement(bf16, *differences.values())}


def drawn_batches(split, batch_size: int, steps: int, seed: int = TrainConfig.seed) -> list:
    "The first `steps` batches of epoch 0 as `train_prompts` draws them (seed `seed`), collated."
    return [collate(split, step) for step in epoch_batches(len(split), batch_size, seed, 0)[:steps]]


def random_length_batches(shape: str, batch_size: int, text_length: int, steps: int, shortest: int = 8) -> list:
    "Random batches whose texts have `shortest` to `text_length` tokens, uniformly (right-padded, [MASK] before [SEP])."
    gen, batches = torch.Generator().manual_seed(0), []
    for step in range(steps):
        batch = random_batch(batch_size, text_length, SHAPES[shape]["vocab_size"], seed=step)
        lengths = torch.randint(shortest, text_length + 1, (batch_size,), generator=gen)
        keep = torch.arange(text_length) < lengths[:, None]
        batch["input_ids"] = torch.where(keep, batch["input_ids"], 0)
        batch["input_ids"][torch.arange(batch_size), lengths - 2], batch["input_ids"][torch.arange(batch_size), lengths - 1] = 4, 3
        batch["attention_mask"], batch["mask_positions"] = keep.long(), lengths - 2
        batches.append(batch)
    return batches


def bench_padding(models, batches, target_ids, repeats: int, device="cpu", bf16=False, source: str = "") -> dict:
    """Steps over padded `batches` (one forward each) through the loop, and through the batched BERT on the padded rows
    and on the real tokens alone (`unpad`): what dropping the padding gives, with the same losses and gradients."""
    family = StackedFamily(models)
    def stacked(unpad):
        def losses(prompt, batch, targets):
            family.unpad = unpad
            return family.losses(prompt, batch, targets)
        return losses
    ways = {"loop": partial(family_losses_loop, models), "padded": stacked(False), "unpadded": stacked(True)}
    prompt_init = bench_prompt(models[0].config.hidden_size, device)
    methods = {name: training_steps(losses, [[b] for b in batches], target_ids.to(device), prompt_init, device, bf16) for name, losses in ways.items()}
    median, results, seconds = compare(methods, repeats, device)
    prompt_length = len(prompt_init)
    tokens = (lambda b: (b["attention_mask"].shape[1] + prompt_length) * len(b["attention_mask"]),
              lambda b: int(b["attention_mask"].sum()) + prompt_length * len(b["attention_mask"]))
    return {"benchmark": "padding", "source": source, "models": len(models), "batch": len(batches[0]["labels"]), "steps": len(batches), "bf16": bf16,
            "row_parts": row_parts(family, prompt_init, len(batches[0]["labels"])),
            "padded_over_real_tokens": round(sum(map(tokens[0], batches)) / sum(map(tokens[1], batches)), 3),   # prompt rows included
            **{f"{name}_s": round(median[name], 4) for name in methods},
            "speedup_unpadded_over_padded": round(median["padded"] / median["unpadded"], 3),
            "speedup_unpadded_over_loop": round(median["loop"] / median["unpadded"], 3),
            "speedup_padded_over_loop": round(median["loop"] / median["padded"], 3),
            **same_steps(results, "loop", bf16), "seconds": seconds}


def bench_micro_batches(models, split, target_ids, batch_size: int = 32, micro: int = 8, steps: int = 4, repeats: int = 5, device="cpu", path="auto",
                        bf16=False, seed: int = TrainConfig.seed) -> dict:
    """Whole optimizer steps of `batch_size` real examples in micro-batches of `micro`: longest first against the drawn
    order, and against the step in one forward; the same gradients; padded text tokens over real ones each way.
    `path`: the models' path (auto: what `train_prompts` takes on `device`)."""
    path, family_losses = models_path(models, path, device)
    lengths, epoch_plans = split.lengths, micro_batch_plans(split, batch_size, micro, len(split), seed)
    plans = {name: plan[:steps] for name, plan in epoch_plans.items()}
    prompt_init = bench_prompt(models[0].config.hidden_size, device)
    methods = {name: training_steps(family_losses, [[collate(split, chunk) for chunk in step] for step in plan], target_ids.to(device), prompt_init, device, bf16)
               for name, plan in plans.items()}            # collated once: the models are timed
    median, results, seconds = compare(methods, repeats, device)
    return {"benchmark": "micro_batches", "models": len(models), "batch": batch_size, "micro_batch": micro, "steps": steps, "path": path,
            "padded_over_real_text_tokens": padding_ratios(plans, lengths),
            "padded_over_real_text_tokens_epoch": padding_ratios(epoch_plans, lengths),
            **{f"{name}_s": round(median[name], 4) for name in methods},
            "speedup_longest_first_over_drawn_order": round(median["drawn_order"] / median["longest_first"], 3),
            "speedup_longest_first_over_one_forward": round(median["one_forward"] / median["longest_first"], 3),
            **same_steps(results, "one_forward", bf16),
            "seconds": seconds}


def offline_default_training(n_models: int = 5, device="cpu") -> tuple:
    """The shipped family's first `n_models` models (on `device`), the offline default's tokenised training split,
    verbalizer and the seed its training draws batches with (params/mini.yml)."""
    from explainable_soft_prompts.config import load_params
    from explainable_soft_prompts.data import load_task_data
    from explainable_soft_prompts.models import family_members, load_family
    repo = Path(__file__).resolve().parents[1]
    params = load_params(repo / "params/mini.yml")
    models, tokenizer = load_family(family_members(repo / params["family_dir"])[:n_models])
    data = load_task_data(params["task"], tokenizer, params["split_sizes"], params["split_seed"], max_length=params["max_length"],
                          prompt_length=params["prompt_length"])
    return [m.to(device) for m in models], data.tokenized["train"], torch.tensor(data.verbalizer.token_ids), params.get("seed", TrainConfig.seed)


def memory_mib(field: str) -> float:
    "VmHWM (peak) or VmRSS of this process in MiB. (ru_maxrss would carry over the parent's peak into the child.)"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trimmed_rss_mib() -> float | None:
    """VmRSS in MiB after glibc has handed the heap's freed pages back to the OS (`malloc_trim`): the memory the process
    holds, not what its allocator keeps for later. Freeing the models' original weights after stacking leaves several
    MiB of such pages at the family's size. None where there is no glibc."""
    try: trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError): return None
    trim(0)
    return memory_mib("VmRSS")


def peak_memory_child(shape: str, n_models: int, vectorized: bool, batch_size: int, text_length: int) -> dict:
    "Run in a subprocess: build the family, take 2 steps, report peak RSS and the weights' size (MiB)."
    models = random_family(n_models, shape)
    weights = sum(p.numel() * p.element_size() for m in models for p in m.parameters()) / 2**20
    batch = random_batch(batch_size, text_length, SHAPES[shape]["vocab_size"])
    after_models = memory_mib("VmRSS")
    step = make_step(models, "vectorized" if vectorized else "loop", batch, torch.tensor([5, 6]), bench_prompt(SHAPES[shape]["hidden_size"]), "cpu")
    setup = {"rss_after_setup_mib": memory_mib("VmRSS"), "peak_during_setup_mib": memory_mib("VmHWM")}   # stacking happens here
    setup["trimmed_rss_after_setup_mib"] = trimmed_rss_mib()
    stacks = {t.untyped_storage().data_ptr() for t in step.family.params.values()} if vectorized else set()
    setup["models_view_the_stack"] = all(p.untyped_storage().data_ptr() in stacks for m in models for p in m.parameters()) if vectorized else None
    for _ in range(2): step()
    return {"weights_mib": weights, "rss_after_models_mib": after_models, **setup, "peak_rss_mib": memory_mib("VmHWM")}


RSS_FLOOR_MIB = 32      # differences of resident memory below this are not resolved here without trimming


def peak_memory(shape, n_models, batch_size, text_length) -> dict:
    out = {}
    for path in ("loop", "vectorized"):
        code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_training as b; "
                f"print(json.dumps(b.peak_memory_child({shape!r}, {n_models}, {path == 'vectorized'}, {batch_size}, {text_length})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[path] = json.loads(done.stdout.strip().splitlines()[-1])
    weights = out["loop"]["weights_mib"]
    held = out["vectorized"]["rss_after_setup_mib"] - out["loop"]["rss_after_setup_mib"]           # weights held after stacking
    setup_peak = out["vectorized"]["peak_during_setup_mib"] - out["loop"]["peak_during_setup_mib"]  # while stacking
    trimmed = [out[path]["trimmed_rss_after_setup_mib"] for path in ("loop", "vectorized")]
    held_trimmed = None if None in trimmed else trimmed[1] - trimmed[0]                             # the same, the freed pages returned
    # untrimmed, under 32 MiB is below what RSS resolves here (freed pages the allocator keeps, the stacked buffers,
    # Python objects), hence the floor; trimmed, a second copy would show as the weights' size. The peak during the
    # setup cannot be trimmed, so a passing copy is judged only where half the weights exceed the floor (BERT-base,
    # not the family's 14 MiB, whose setup peak rose by the kept pages, +12.5 MiB in one run); elsewhere it is None
    held_ok = held_trimmed < 0.5 * weights if held_trimmed is not None else held < max(0.5 * weights, RSS_FLOOR_MIB)
    no_copy_during_setup = setup_peak < 0.5 * weights if 0.5 * weights > RSS_FLOOR_MIB else None
    return {"shape": shape, "models": n_models, "weights_mib": round(weights, 1),
            "vectorized_minus_loop_after_setup_mib": round(held, 1), "vectorized_minus_loop_peak_during_setup_mib": round(setup_peak, 1),
            "vectorized_minus_loop_after_setup_trimmed_mib": None if held_trimmed is None else round(held_trimmed, 1),
            "loop_peak_rss_mib": round(out["loop"]["peak_rss_mib"], 1), "vectorized_peak_rss_mib": round(out["vectorized"]["peak_rss_mib"], 1),
            "models_view_the_stack": out["vectorized"]["models_view_the_stack"],
            "no_second_copy_during_setup": no_copy_during_setup,
            "no_second_copy_of_weights": bool(out["vectorized"]["models_view_the_stack"]) and held_ok and no_copy_during_setup is not False,
            "note": "peak during steps includes activations, which differ between the paths"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["family", "bert-base"], choices=list(SHAPES))
    parser.add_argument("--models", nargs="+", type=int, default=[1, 2, 5, 10])
    parser.add_argument("--repeats", type=int, default=None, help=f"timed steps per path (default, by shape: {DEFAULT_REPEATS}; for the stacked prompts: {STACKED_REPEATS})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--batch", nargs="+", type=int, default=None, help="examples per step, one or more (default: 8 and 32 at the family's shape, 4 at BERT-base); stacked prompts at each")
    parser.add_argument("--full-logits", nargs="*", type=int, default=None,
                        help="model counts at which the study's full-logits loop is timed too (default: every count at the family's shape, 5 at BERT-base, where it takes 5 s a step)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--stacked-prompts", type=int, default=3, help="prompts per stacked step at M = 5 (0: skip)")
    parser.add_argument("--stacked-prompts-path", default="auto", choices=["auto", "loop", "vectorized"],
                        help="the models' path for the stacked-prompt step (auto: what train_prompts takes on the device: vectorized on CUDA, the loop on CPU)")
    parser.add_argument("--stacked-prompts-shapes", nargs="+", default=None, choices=list(SHAPES),
                        help="shapes at which the stacked-prompt step is timed (default: the family's on a CPU, every shape on CUDA)")
    parser.add_argument("--path", default="auto", choices=["auto", "bert", "vmap"], help="the vectorised path (auto: batched BERT for BERT models)")
    parser.add_argument("--real-data", type=int, nargs="?", const=REAL_DATA_REPEATS, default=None, metavar="REPEATS",
                        help="also time steps on the offline default's training data through the shipped family's five models: padding dropped or kept "
                             "(8 and 32 examples), and micro-batches of 8 longest first against the drawn order (32 examples)")
    parser.add_argument("--real-data-only", action="store_true", help="time the real-data figures alone")
    parser.add_argument("--random-lengths", action="store_true",
                        help="also time dropping the padding at each shape on random batches of texts of 8 to the shape's text tokens (M = 5)")
    parser.add_argument("--out", default="outputs/bench/training.json")
    args = parser.parse_args(argv)
    stacked_shapes = stacked_prompt_shapes(args.stacked_prompts_shapes, args.device)
    records = []
    if args.real_data or args.real_data_only:
        models, split, target_ids, seed = offline_default_training(device=args.device)
        repeats = args.real_data or REAL_DATA_REPEATS
        for batch_size in (8, 32):
            records.append(emit_record(bench_padding(models, drawn_batches(split, batch_size, 6, seed), target_ids, repeats, args.device, args.bf16, "offline default training split")))
        records.append(emit_record(bench_micro_batches(models, split, target_ids, repeats=repeats, device=args.device, bf16=args.bf16, seed=seed)))
        del models
    for shape in ([] if args.real_data_only else args.shapes):
        default_batch, text_length = DEFAULT_BATCH[shape]
        # one family per shape serves every batch size, the stacked-prompt step and the padding figure (5 models)
        # fp32 weights: --bf16 is autocast over them, as training's `bf16: true` runs
        family = random_family(max(*args.models, 5 if args.stacked_prompts or args.random_lengths else 1), shape, args.device)
        batches = args.batch or [*SMALLER_BATCHES[shape], default_batch]
        near_empty = {}                                       # by model count: the same for every batch size
        for batch_size in batches:
            batch, targets, prompt_init = step_inputs(shape, batch_size, text_length, args.device)
            for n_models in args.models:
                models = family[:n_models]
                names = ("full_logits_loop", "loop", "vectorized") if n_models in full_logits_models(shape, args.full_logits) else ("loop", "vectorized")
                methods = {name: make_step(models, name, batch, targets, prompt_init, args.device, args.bf16, args.path) for name in names}
                parts = row_parts(methods["vectorized"].family, prompt_init, batch_size)
                if parts > 1:                                         # the stack's rows split over threads: timed whole too
                    names = (*names, "vectorized_whole")
                    methods["vectorized_whole"] = make_step(models, "vectorized_whole", batch, targets, prompt_init, args.device, args.bf16, args.path)
                median, results, seconds = compare(methods, args.repeats or DEFAULT_REPEATS[shape], args.device)
                record = {"benchmark": "training_step", "shape": shape, "models": n_models, "batch": batch_size, "text_tokens": text_length,
                          "prompt_length": 16, "bf16": args.bf16, "vectorized_path": methods["vectorized"].family.path,
                          **{f"{name}_s": round(median[name], 4) for name in names},
                          "speedup_vectorized_over_loop": round(median["loop"] / median["vectorized"], 3), "row_parts": parts}
                if parts > 1:
                    record["speedup_vectorized_whole_over_loop"] = round(median["loop"] / median["vectorized_whole"], 3)
                    record["speedup_row_split"] = round(median["vectorized_whole"] / median["vectorized"], 3)   # what the split gives the stack
                if n_models not in near_empty:
                    near_empty[n_models] = near_empty_seconds(models, shape, args.repeats or NEAR_EMPTY_REPEATS[shape], args.device, args.bf16, args.path)
                record.update(speedup_decomposition(median, near_empty[n_models]))
                record.update(same_steps(results, "loop", args.bf16))            # every method against the loop: losses and prompt gradient
                least = training_target(shape, n_models, args.device)
                record.update(target(record["speedup_vectorized_over_loop"], at_least=least, same_numbers=record["same_numbers"]))
                if "full_logits_loop" in names:
                    record["speedup_vectorized_over_full_logits_loop"] = round(median["full_logits_loop"] / median["vectorized"], 3)
                    record["speedup_loop_over_full_logits_loop"] = round(median["full_logits_loop"] / median["loop"], 3)   # what reading at [MASK] alone gives
                    if least: record["target_met_over_full_logits_loop"] = record["speedup_vectorized_over_full_logits_loop"] >= least and record["same_numbers"]
                record["seconds"] = seconds
                records.append(emit_record(record))
            if args.random_lengths:
                padded_batches = random_length_batches(shape, batch_size, text_length, 3)
                record = bench_padding(family[:5], padded_batches, torch.tensor([5, 6]), args.repeats or DEFAULT_REPEATS[shape], args.device, args.bf16,
                                       f"random batches of texts of 8-{text_length} tokens")
                records.append(emit_record(record))
            if args.stacked_prompts and shape in stacked_shapes:
                record = bench_stacked_prompts(family[:5], shape, args.stacked_prompts, args.repeats or STACKED_REPEATS[shape], batch_size, text_length, args.device, args.bf16,
                                              args.stacked_prompts_path)
                records.append(emit_record(record))
        del family
    memory = [] if args.no_memory or args.real_data_only or args.device != "cpu" else [peak_memory(s, 5, *DEFAULT_BATCH[s]) for s in args.shapes]
    for m in memory: emit({"benchmark": "training_peak_memory", **m})
    write_json({"records": records, "memory": memory, "machine": machine(), "config": vars(args)}, args.out)


if __name__ == "__main__":
    main()
