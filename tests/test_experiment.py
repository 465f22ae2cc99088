"The experiment notebook run head-less by papermill, parameter files, and early refusal of bad parameters."
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
import yaml

from conftest import REPO
from explainable_soft_prompts.config import check_config, experiment_config, load_params
from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.models import tiny_family

NOTEBOOK = REPO / "nbs" / "experiments" / "train_and_evaluate.ipynb"
WORDS = ["good", "bad", "great", "awful", "movie", "film", "the", "was", "a", "plot", "not", "neg", "##ative", "pos", "##itive"]


def micro_setup(root: Path):
    "A 3-model tiny family and a local imdb-shaped dataset of a few dozen rows."
    tok = tiny_tokenizer(WORDS)
    tiny_family(3, tok, hidden_size=16, folder=root / "family")
    (root / "data" / "imdb").mkdir(parents=True, exist_ok=True)
    rows = [{"text": f"the movie was {w} {w}", "label": int(w in ("good", "great"))} for w in ["good", "bad", "great", "awful"] * 15]
    pd.DataFrame(rows).to_json(root / "data" / "imdb" / "train.jsonl", orient="records", lines=True)
    return {"run_name": "micro", "task": "imdb", "data_source": "local", "data_dir": str(root / "data"), "split_sizes": [32, 12, 12],
            "family_dir": str(root / "family"), "build_family": False, "max_length": 32, "output_dir": str(root / "outputs"),
            "prompts": {"1_model_0": [0], "2_model_0": [0, 1]}, "prompt_length": 4, "epochs": 2, "batch_size": 8, "lr": 0.3}


def test_papermill_micro_run_writes_prompts_tables_and_figures(tmp_path):
    params = micro_setup(tmp_path)
    out = tmp_path / "outputs" / "micro"
    out.mkdir(parents=True)
    pm.execute_notebook(str(NOTEBOOK), str(out / "train_and_evaluate.ipynb"), parameters=params, cwd=str(REPO), kernel_name="python3", progress_bar=False)
    for table in ("test_by_model", "one_model_vs_majority", "transfer", "timings"):
        assert (out / "tables" / f"{table}.csv").exists(), table
    transfer = pd.read_csv(out / "tables" / "transfer.csv")
    assert len(transfer) == 2 * 2 * 3  # 2 prompts x (initial, trained) x 3 models
    assert set(transfer[transfer.prompt == "2_model_0"].query("trained_on").model) == {"seed_0", "seed_1"}
    assert (out / "figures" / "validation_loss.png").exists()
    for prompt in ("1_model_0", "2_model_0"):
        assert (out / "prompts" / prompt / "soft_prompt.safetensors").exists()


def test_papermill_refuses_a_typo_before_training(tmp_path):
    params = {**micro_setup(tmp_path), "learning_rate": 0.1}
    with pytest.raises(pm.PapermillExecutionError, match="learning_rate"):
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "failed.ipynb"), parameters=params, cwd=str(REPO), kernel_name="python3", progress_bar=False)
    assert (tmp_path / "failed.ipynb").exists()                       # the error is readable in the executed notebook
    assert not (tmp_path / "outputs" / "micro" / "prompts").exists()  # nothing was trained


@pytest.mark.parametrize("bad, message", [
    ({"task": "sst2"}, "Unknown task"),
    ({"prompt_length": 0}, "prompt_length"),
    ({"models": ["./missing/model"]}, "does not exist"),
    ({"split_sizes": [10, 5]}, "split_sizes"),
    ({"prompts": {"p": [0, 7]}}, "models 0..2"),
])
def test_bad_parameters_fail_before_any_work(tmp_path, bad, message):
    params = {**micro_setup(tmp_path), **bad}
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_config(experiment_config(params))


def test_split_larger_than_data_names_the_rows(tmp_path):
    from explainable_soft_prompts.experiment import prepare
    with pytest.raises(ValueError, match="only 60"):
        prepare({**micro_setup(tmp_path), "split_sizes": [50, 20, 20]}, progress=False)
    shrunk = prepare({**micro_setup(tmp_path), "split_sizes": [50, 20, 20], "allow_shrink": True}, progress=False)[-1]
    assert [len(shrunk.splits[s]) for s in ("train", "validation", "test")] == [33, 13, 13]


def test_mismatched_hidden_sizes_are_refused(tmp_path):
    from explainable_soft_prompts.experiment import prepare
    params = micro_setup(tmp_path)
    tiny_family(1, tiny_tokenizer(WORDS), hidden_size=8, folder=tmp_path / "other")
    params = {**params, "family_dir": None, "models": [str(tmp_path / "family" / "seed_0"), str(tmp_path / "other" / "seed_0")],
              "prompts": {"p": [0, 1]}}
    with pytest.raises(ValueError, match="differ in"):
        prepare(params, progress=False)


@pytest.mark.parametrize("name, n_prompts", [("imdb", 73), ("emotion", 38), ("mnli", 47), ("mini", 8)])
def test_parameter_files_pass_their_dry_run(name, n_prompts):
    from explainable_soft_prompts.experiment import plan
    params = load_params(REPO / "params" / f"{name}.yml")
    assert check_config(experiment_config(params)).prompt_length == 16
    table = plan(params)
    assert len(table) == n_prompts and (table.steps > 0).all()
    if name == "imdb":   # the study's short-prompt and seed variants come through
        assert table.set_index("prompt").loc["1_model_3_sp", "prompt_length"] == 2
        assert table.set_index("prompt").loc["5_model_init_1", "init_seed"] == 8943168
    if name == "mnli":
        assert table.set_index("prompt").loc["5_model_0_e20", "epochs"] == 20
