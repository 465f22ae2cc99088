"Run under torchrun by test_distributed.py: train one prompt on a tiny 3-model family, model-sharded over the ranks."
import sys
from pathlib import Path

import torch

from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.distributed import init_process_group, sharded_masking_losses
from explainable_soft_prompts.models import tiny_family
from explainable_soft_prompts.training import TrainConfig, toy_task_data, train_prompt

CONFIG = dict(prompt_length=4, epochs=2, batch_size=8, micro_batch_size=4, lr=0.3, init_seed=1)


def train(out_dir=None):
    tokenizer = tiny_tokenizer()
    models, data = tiny_family(3, tokenizer), toy_task_data(tokenizer)
    result = train_prompt(models, data, TrainConfig(**CONFIG), out_dir, ["m0", "m1", "m2"], progress=False)
    masking = sharded_masking_losses(models, result.prompt, data.tokenized["test"], data.verbalizer.token_ids)
    return result, masking


if __name__ == "__main__":
    import torch.distributed as dist
    rank, world = init_process_group("gloo")
    out = Path(sys.argv[1])
    result, masking = train(out / "run")
    torch.save({"prompt": result.prompt, "history": result.history, "masking": masking}, out / f"rank_{rank}.pt")
    dist.destroy_process_group()
