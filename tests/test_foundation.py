"The foundation's promises: loop and vectorised paths agree, resume is exact, seeds are deterministic, bad input is refused early."
import json
import pytest
import torch

from conftest import SHARED
from explainable_soft_prompts.data import make_verbalizer, tiny_tokenizer, collate
from explainable_soft_prompts.models import tiny_family
from explainable_soft_prompts.prompt import load_prompt
from explainable_soft_prompts.training import StackedFamily, TrainConfig, family_losses_loop, split_loss_accuracy, toy_task_data, train_prompt


@pytest.fixture(scope="module")
def setup():
    tok = tiny_tokenizer()
    return tok, tiny_family(5, tok, hidden_size=16, layers=2), toy_task_data(tok, n_train=40, n_eval=12)


@pytest.mark.parametrize("path", ["bert", "vmap"])
def test_loop_and_vectorised_agree_on_loss_and_gradient(setup, path):
    tok, models, data = setup
    batch = collate(data.tokenized["train"], range(10))
    targets = torch.tensor(data.verbalizer.token_ids)
    prompt = torch.randn(4, 16, requires_grad=True)
    loop = family_losses_loop(models, prompt, batch, targets)
    (grad_loop,) = torch.autograd.grad(loop.mean(), prompt)
    vec = StackedFamily(models, path).losses(prompt, batch, targets)
    (grad_vec,) = torch.autograd.grad(vec.mean(), prompt)
    assert loop.shape == (5,)
    torch.testing.assert_close(vec, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_vec, grad_loop, rtol=1e-4, atol=1e-6)
    assert grad_loop.abs().sum() > 0


def test_training_reduces_loss_and_is_deterministic(setup):
    tok, models, data = setup
    cfg = TrainConfig(prompt_length=4, epochs=4, batch_size=8, lr=0.3, init_seed=3)
    first = train_prompt(models[:2], data, cfg, progress=False)
    second = train_prompt(models[:2], data, cfg, progress=False)
    assert torch.equal(first.prompt, second.prompt)
    assert first.history[-1]["val_loss"] < first.history[4]["val_loss"]
    other = train_prompt(models[:2], data, TrainConfig(prompt_length=4, epochs=4, batch_size=8, lr=0.3, init_seed=3, seed=7), progress=False)
    assert not torch.equal(first.prompt, other.prompt)


@pytest.mark.parametrize("kill_after", [1, 5, 6, 10])
def test_resume_after_kill_gives_identical_prompt(setup, tmp_path, kill_after):
    tok, models, data = setup
    cfg = TrainConfig(prompt_length=4, epochs=2, batch_size=8, micro_batch_size=3, lr=0.3, init_seed=3, checkpoint_every=4)
    whole = train_prompt(models[:3], data, cfg, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_prompt(models[:3], data, cfg, tmp_path / "killed", progress=False, stop_after_step=kill_after)
    resumed = train_prompt(models[:3], data, cfg, tmp_path / "killed", progress=False)
    assert torch.equal(resumed.prompt, whole.prompt)
    assert (tmp_path / "killed" / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()


def test_verbalizer_collisions_are_refused():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="share a target token"):
        make_verbalizer(("sadness", "sad"), tok)
    assert make_verbalizer(("negative", "positive"), tok).split_words == {"negative": ["neg", "##ative"], "positive": ["pos", "##itive"]}


def test_prompt_folder_round_trip(setup, tmp_path):
    tok, models, data = setup
    result = train_prompt(models[:2], data, TrainConfig(prompt_length=4, epochs=1, batch_size=8), tmp_path / "p", progress=False)
    assert torch.equal(load_prompt(tmp_path / "p"), result.prompt)
    meta = json.loads((tmp_path / "p" / "prompt.json").read_text())
    assert meta["models"] == ["model_0", "model_1"] and meta["train_config"]["prompt_length"] == 4


@pytest.mark.skipif(not (SHARED / "paper_artifacts").exists(), reason="../shared/paper_artifacts is not present")
def test_study_prompts_load():
    runs = sorted(p for p in (SHARED / "paper_artifacts").iterdir() if (p / "checkpoints" / "soft_prompt.pt").exists())
    assert len(runs) > 100
    for run in runs:
        trained, initial = load_prompt(run), load_prompt(run, initial=True)
        assert trained.shape == initial.shape and trained.shape[1] == 768
        assert trained.shape[0] == (2 if run.name.endswith("_sp") else 16)
        assert torch.isfinite(trained).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (run by benchmarks/gpu_check.sh)")
def test_evaluation_on_a_gpu_takes_cpu_models_there_and_leaves_them_trainable(setup):
    "Models that were never trained in this process (a family's spare, a second run) are evaluated on the GPU asked for."
    tok, _, data = setup
    models = tiny_family(2, tok, hidden_size=16, layers=2, seed=7)                  # on the CPU
    targets = torch.tensor(data.verbalizer.token_ids)
    loss, accuracy = split_loss_accuracy(models, torch.randn(4, 16), data.tokenized["test"], targets, device="cuda")
    assert loss.shape == accuracy.shape == (2,) and torch.isfinite(loss).all()
    assert all(p.device.type == "cuda" and not p.is_inference() for m in models for p in m.parameters())
    trained = train_prompt(models, data, TrainConfig(prompt_length=4, epochs=1, batch_size=8, device="cuda"), progress=False)
    assert trained.prompt.isfinite().all()
