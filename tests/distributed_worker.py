"""Run under torchrun by test_distributed.py: train one prompt on a tiny 3-model family, model-sharded over the ranks (or split into
data-parallel groups: argv[2]); with argv[3] `stacked`, two prompts differing in their init seed in one pass instead, on a family
of argv[4] models (default 3; 1 leaves rank 1 without a model)."""
import sys
from pathlib import Path

import torch

from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.distributed import exit_now_if_distributed, init_process_group, sharded_masking_losses
from explainable_soft_prompts.models import tiny_family
from explainable_soft_prompts.training import TrainConfig, toy_task_data, train_prompt, train_prompts

CONFIG = dict(prompt_length=4, epochs=2, batch_size=8, micro_batch_size=4, lr=0.3, init_seed=1)


def train(out_dir=None, data_parallel_groups=1):
    tokenizer = tiny_tokenizer()
    models, data = tiny_family(3, tokenizer), toy_task_data(tokenizer)
    config = TrainConfig(**CONFIG, data_parallel_groups=data_parallel_groups)
    result = train_prompt(models, data, config, out_dir, ["m0", "m1", "m2"], progress=False)
    masking = sharded_masking_losses(models, result.prompt, data.tokenized["test"], data.verbalizer.token_ids)
    return result, masking


def train_stacked(out_dir=None, init_seeds=(1, 2), n_models=3):
    "Prompts differing only in their init seed, trained in one pass (`train_prompts`) through `n_models` models, each in `out_dir/stack_<i>`."
    tokenizer = tiny_tokenizer()
    models, data = tiny_family(n_models, tokenizer), toy_task_data(tokenizer)
    configs = [TrainConfig(**{**CONFIG, "init_seed": seed}) for seed in init_seeds]
    return train_prompts(models, data, configs, [out_dir / f"stack_{i}" if out_dir else None for i in range(len(configs))],
                         [f"m{i}" for i in range(n_models)], progress=False)


if __name__ == "__main__":
    import torch.distributed as dist
    import explainable_soft_prompts.training as training
    seen = {"models": set(), "examples": 0}                 # what this rank's training forward passes covered
    loop = training.family_losses_loop
    def counting_loop(models, prompt, batch, target_ids):
        seen["models"].add(len(models)); seen["examples"] += len(batch["labels"])
        return loop(models, prompt, batch, target_ids)
    training.family_losses_loop = counting_loop
    rank, world = init_process_group("gloo")
    out = Path(sys.argv[1])
    if sys.argv[3:4] == ["stacked"]:
        results = train_stacked(out, n_models=int(sys.argv[4]) if len(sys.argv) > 4 else 3)
        torch.save({"prompts": [r.prompt for r in results], "histories": [r.history for r in results], "seen": seen}, out / f"rank_{rank}.pt")
    else:
        result, masking = train(out / "run", int(sys.argv[2]) if len(sys.argv) > 2 else 1)
        torch.save({"prompt": result.prompt, "history": result.history, "masking": masking, "seen": seen}, out / f"rank_{rank}.pt")
    dist.barrier()                                          # as `run_distributed` ends: no rank tears down while another still works
    dist.destroy_process_group()
    exit_now_if_distributed()                               # as `python -m explainable_soft_prompts.distributed` ends
