"The experiment notebook run head-less by papermill, parameter files, and early refusal of bad parameters."
import pandas as pd
import papermill as pm
import pytest

from conftest import REPO
from micro import WORDS, micro_setup
from explainable_soft_prompts.config import check_config, experiment_config, load_params
from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.models import tiny_family

NOTEBOOK = REPO / "nbs" / "experiments" / "train_and_evaluate.ipynb"
REPORT = REPO / "nbs" / "experiments" / "analyse_and_report.ipynb"
STUDY_TABLES = ["table1", "table2", "table3", "table4", "table5", "table6", "table8", "table9", "tables10_12", "table13", "table14"]


def run_both(params, out):
    for notebook in (NOTEBOOK, REPORT):
        pm.execute_notebook(str(notebook), str(out / notebook.name), parameters=params, cwd=str(REPO), kernel_name="python3", progress_bar=False)


def test_papermill_micro_run_writes_prompts_tables_figures_and_report(tmp_path):
    params = micro_setup(tmp_path)
    out = tmp_path / "outputs" / "micro"
    out.mkdir(parents=True)
    run_both(params, out)
    for table in ["test_by_model", "one_model_vs_majority", "transfer", "timings_training", "timings_report", *STUDY_TABLES]:
        assert (out / "tables" / f"{table}.csv").exists(), table
    transfer = pd.read_csv(out / "tables" / "transfer.csv")
    assert len(transfer) == 5 * 2 * 3  # 5 prompts x (initial, trained) x 3 models
    assert set(transfer[transfer.prompt == "2_model_0"].query("trained_on").model) == {"seed_0", "seed_1"}
    assert pd.read_csv(out / "tables" / "table1.csv").n_models.tolist() == [1, 2]
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == sorted(["validation_loss.png", "loss_by_n_models.png", "masking_heatmap_2_model_0.png",
                              "masking_heatmap_2_model_1.png", "masking_heatmap_2_model_init_1.png", "tsne_2_model_0.png", "tsne_2_model_0_with_ood.png"])
    report = (out / "report.md").read_text()
    for name in ["loss_by_n_models.png", "tsne_2_model_0_with_ood.png"]: assert f"(figures/{name})" in report
    assert "## Table 1: test loss by number of models" in report and "±" in report
    for prompt in params["prompts"]:
        assert (out / "prompts" / prompt / "soft_prompt.safetensors").exists()
    assert (out / "train_and_evaluate.ipynb").exists() and (out / "analyse_and_report.ipynb").exists()


def test_second_run_skips_finished_work(tmp_path):
    "Started again with the same parameters, nothing is retrained or re-analysed; a changed prompt is."
    params = micro_setup(tmp_path)
    out = tmp_path / "outputs" / "micro"
    out.mkdir(parents=True)
    run_both(params, out)
    watched = [out / "prompts" / "2_model_0" / "soft_prompt.safetensors", out / "tables" / "token_masking" / "2_model_0.csv",
               out / "tables" / "transfer.csv", out / "tables" / "compression" / "2_model_1.csv"]
    before = [p.stat().st_mtime_ns for p in watched]
    changed = {**params, "prompts": {**params["prompts"], "2_model_1": {"models": [1, 2], "epochs": 3}}}
    run_both(changed, out)
    after = [p.stat().st_mtime_ns for p in watched]
    assert after[:2] == before[:2]                          # 2_model_0 kept: neither retrained nor re-analysed
    assert after[2] != before[2] and after[3] != before[3]  # the transfer table and 2_model_1's analysis follow the change

    # a failing run leaves its executed notebook, with the error, where the user looks, and the results intact
    results = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".csv", ".safetensors", ".png", ".md"))
    stamps = [p.stat().st_mtime_ns for p in results]
    with pytest.raises(pm.PapermillExecutionError):
        run_both({**changed, "epochs": "many"}, out)
    assert "`epochs` must be a whole number" in (out / "train_and_evaluate.ipynb").read_text()
    assert [p.stat().st_mtime_ns for p in results] == stamps and all(p.exists() for p in results)


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
    ({"vectorized": "maybe"}, "`vectorized` must be true or false"),
    ({"lr": "nan"}, "`lr` must be a finite number"),
    ({"split_sizes": [32.5, 12, 12]}, "whole numbers"),
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


@pytest.mark.parametrize("name, n_prompts", [("imdb", 73), ("emotion", 38), ("mnli", 47), ("mini", 15), ("promptability", 6)])
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
    if name == "emotion":  # with stack_prompts, the study's init-seed variants train in one pass, its training-seed variants alone
        passes = plan({**params, "stack_prompts": True}).set_index("prompt").training_pass
        assert passes["5_model_0"] == passes["5_model_init_1"] == passes["5_model_init_2"] != passes["5_model_train_1"]
        assert passes.nunique() == len(passes) - 2
    if name == "promptability":   # one one-model prompt per member of the family
        assert (table.n_models == 1).all() and sorted(table.models) == [f"seed_{i}" for i in range(6)]


@pytest.mark.parametrize("task", ["imdb", "emotion", "mnli"])
def test_local_dataset_files_on_the_seed_family_pass_their_dry_run(task):
    "The study's datasets on the self-built family from ../shared/data: every parameter checks, the plan has the mini categories."
    from conftest import SHARED
    from explainable_soft_prompts.experiment import plan
    if not (SHARED / "data" / task).exists(): pytest.skip("../shared/data is not beside the checkout")
    params = load_params(REPO / "params" / f"{task}-mini.yml")
    table = plan({**params, "data_dir": str(SHARED / "data")})
    assert len(table) == 15 and set(table.n_models) == {1, 2, 5} and (table.steps > 0).all()
