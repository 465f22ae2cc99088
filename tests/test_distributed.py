"Model-sharded training and analysis over 2 processes (torchrun, gloo on CPU) give what 1 process gives."
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker  # noqa: E402

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(args, cwd, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ESP_PROGRESS": "off", "PYTHONFAULTHANDLER": "1"}   # a rank that aborts prints where it was
    done = subprocess.run(TORCHRUN + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        output = done.stdout + done.stderr
        at = output.find("Fatal Python error")                  # faulthandler's stacks of a rank that aborted
        pytest.fail(f"torchrun exited with {done.returncode}.\n" + (output[at:at + 4000] + "\n...\n" if at >= 0 else "") + output[-3000:])
    return done


def test_two_processes_train_the_same_prompt_as_one(tmp_path):
    torchrun([str(REPO / "tests" / "distributed_worker.py"), str(tmp_path)], cwd=REPO)
    ranks = [torch.load(tmp_path / f"rank_{r}.pt") for r in range(2)]
    single, single_masking = distributed_worker.train()
    assert [r["seen"]["models"] for r in ranks] == [{1}, {2}]                 # the models are split: 1 + 2
    assert [r["seen"]["examples"] for r in ranks] == [96, 96]                 # and both see every batch
    assert torch.equal(ranks[0]["prompt"], ranks[1]["prompt"])                # the ranks agree exactly
    assert torch.allclose(ranks[0]["prompt"], single.prompt, atol=1e-5)       # and match one process
    assert not torch.allclose(single.prompt, single.init_prompt)             # something was trained
    two = pd.DataFrame(ranks[0]["history"]); one = pd.DataFrame(single.history)
    assert list(two.columns) == list(one.columns)                            # every model's loss is logged on rank 0
    assert np.allclose(two.filter(like="/m").to_numpy(), one.filter(like="/m").to_numpy(), atol=1e-5, equal_nan=True)
    assert torch.allclose(ranks[0]["masking"], single_masking, atol=1e-6)    # sharded masking gathers the same matrix
    assert (tmp_path / "run" / "soft_prompt.safetensors").exists()           # written once, by rank 0


def test_two_data_parallel_groups_train_the_same_prompt_as_one_process(tmp_path):
    torchrun([str(REPO / "tests" / "distributed_worker.py"), str(tmp_path), "2"], cwd=REPO)   # 2 groups of 1 rank: each holds all 3 models
    ranks = [torch.load(tmp_path / f"rank_{r}.pt") for r in range(2)]
    single, _ = distributed_worker.train()
    assert [r["seen"]["models"] for r in ranks] == [{3}, {3}]                 # each group holds the whole family
    assert [r["seen"]["examples"] for r in ranks] == [48, 48]                 # and takes half of each batch (2 epochs x 48 examples)
    assert torch.equal(ranks[0]["prompt"], ranks[1]["prompt"])
    assert torch.allclose(ranks[0]["prompt"], single.prompt, atol=1e-5)
    two = pd.DataFrame(ranks[0]["history"]); one = pd.DataFrame(single.history)
    assert np.allclose(two.filter(like="/m").to_numpy(), one.filter(like="/m").to_numpy(), atol=1e-5, equal_nan=True)   # each group saw half of every batch


def assert_stacked_ranks_match(ranks, alone):
    "Both ranks end with the same prompts, each as trained in one process (`alone`), with its per-model history; two prompts, not one twice."
    for p, single in enumerate(alone):
        assert torch.equal(ranks[0]["prompts"][p], ranks[1]["prompts"][p])
        assert torch.allclose(ranks[0]["prompts"][p], single.prompt, atol=1e-5)
        two, one = pd.DataFrame(ranks[0]["histories"][p]), pd.DataFrame(single.history)
        assert np.allclose(two.filter(like="/m").to_numpy(), one.filter(like="/m").to_numpy(), atol=1e-5, equal_nan=True)
    assert not torch.allclose(ranks[0]["prompts"][0], ranks[0]["prompts"][1])


def test_two_processes_train_stacked_prompts_as_one_process_trains_each(tmp_path):
    "Prompts differing in their init seed, trained in one pass on 2 model-sharded ranks: each as if trained alone in one process."
    torchrun([str(REPO / "tests" / "distributed_worker.py"), str(tmp_path), "1", "stacked"], cwd=REPO)
    ranks = [torch.load(tmp_path / f"rank_{r}.pt") for r in range(2)]
    assert [r["seen"]["models"] for r in ranks] == [{1}, {2}]                 # the models are split
    alone = [distributed_worker.train(data_parallel_groups=1)[0], distributed_worker.train_stacked(init_seeds=(2,))[0]]
    assert_stacked_ranks_match(ranks, alone)
    assert all((tmp_path / f"stack_{p}" / "soft_prompt.safetensors").exists() for p in range(2))


def test_a_rank_without_models_trains_stacked_prompts_with_the_other(tmp_path):
    "More processes than models: on a 1-model family rank 1 holds none, yet takes every step of 2 stacked prompts with rank 0."
    torchrun([str(REPO / "tests" / "distributed_worker.py"), str(tmp_path), "1", "stacked", "1"], cwd=REPO)
    ranks = [torch.load(tmp_path / f"rank_{r}.pt") for r in range(2)]
    assert [r["seen"]["models"] for r in ranks] == [{1}, set()]              # rank 1 runs no model
    alone = distributed_worker.train_stacked(n_models=1)                      # both prompts in one process
    assert_stacked_ranks_match(ranks, alone)


def test_the_command_line_runs_an_experiment_on_two_processes(tmp_path):
    from micro import micro_setup
    import yaml
    params = micro_setup(tmp_path)
    params["prompts"] = {"1_model_0": [0], "2_model_0": [0, 1], "3_model_0": [0, 1, 2]}
    (tmp_path / "params.yml").write_text(yaml.safe_dump(params))
    torchrun(["-m", "explainable_soft_prompts.distributed", str(tmp_path / "params.yml")], cwd=REPO)
    out = Path(params["output_dir"]) / params["run_name"]
    assert (out / "report.md").exists() and (out / "tables" / "table1.csv").exists()
    masking = pd.read_csv(out / "tables" / "token_masking" / "3_model_0.csv")
    assert masking.model.tolist() == ["seed_0", "seed_1", "seed_2"]           # rows gathered from both ranks, in order
