"The experiment notebook run head-less by papermill, parameter files, and early refusal of bad parameters."
import pandas as pd
import papermill as pm
import pytest
import torch

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


@pytest.mark.parametrize("bad, message", [
    ({"label_words": ["zzzz", "good"]}, "unknown to this tokenizer"),
    ({"label_words": ["good", "good"]}, "share a target token"),
    ({"prompts": {"1_model_0": [0], "1_model_1": {"models": [1], "device": "cuda"}}}, "needs a GPU"),
])
def test_bad_parameters_that_need_the_tokenizer_or_device_fail_before_the_family_loads(tmp_path, bad, message, monkeypatch):
    "Label words are checked against the family's tokenizer alone, and every prompt's device, before any model loads."
    from explainable_soft_prompts import experiment
    if "device" in str(bad) and torch.cuda.is_available(): pytest.skip("this machine has a GPU")
    def no_loading(*args, **kwargs): raise AssertionError("the family was loaded before the bad parameter was refused")
    monkeypatch.setattr(experiment, "load_family", no_loading)
    with pytest.raises(ValueError, match=message):
        experiment.prepare({**micro_setup(tmp_path), **bad}, progress=False)


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
    if name in ("imdb", "mnli", "emotion"):   # the study's micro-batches, by number of models
        micro = table.groupby("n_models").micro_batch_size.unique().map(list).to_dict()
        assert micro == {"imdb": {1: [32], 2: [16], 5: [8], 10: [3]}, "mnli": {1: [32], 2: [16], 5: [8], 10: [4]},
                         "emotion": {1: [128], 2: [128], 5: [32], 10: [16]}}[name], micro
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


@pytest.mark.parametrize("notebook", [NOTEBOOK, REPORT], ids=lambda p: p.name)
def test_notebook_parameter_defaults_are_the_library_defaults(notebook):
    "A parameter file that leaves a setting out gets the same run from papermill as from `plan`, `prepare` and torchrun."
    import json
    from dataclasses import MISSING, fields
    from explainable_soft_prompts.config import ExperimentConfig
    from explainable_soft_prompts.training import TrainConfig
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    given = {}
    exec("".join(cell["source"]), {}, given)
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for cls in (ExperimentConfig, TrainConfig) for f in fields(cls)}
    assert set(given) <= set(defaults), sorted(set(given) - set(defaults))
    differing = {k: (v, defaults[k]) for k, v in given.items() if v != defaults[k]}
    assert not differing, f"notebook default vs library default: {differing}"


def test_prompts_are_tested_and_analysed_on_texts_cut_for_their_own_length(tmp_path):
    "A 2-token prompt trained on texts cut for 2 tokens is tested, transferred and masked on those texts, not on the 4-token prompts'."
    from explainable_soft_prompts.data import TaskData, tokenize_examples
    from explainable_soft_prompts.evaluation import evaluate_prompt
    from explainable_soft_prompts.experiment import run_experiment
    from explainable_soft_prompts.models import family_members, load_family
    from explainable_soft_prompts.report import report_run, token_masking_table_path
    from explainable_soft_prompts.training import toy_task_data
    tiny_family(2, tiny_tokenizer(), folder=tmp_path / "family")
    def cut_for_four(tokenizer):            # four-word texts in 10 positions: 3 words fit after 4 prompt tokens, all 4 after 2
        toy = toy_task_data(tokenizer)
        tokenized = {k: tokenize_examples(v.text, v.label, tokenizer, 10, 4) for k, v in toy.splits.items()}
        return TaskData(toy.task, toy.splits, tokenized, toy.verbalizer, prompt_length=4, max_length=10)
    params = {"run_name": "cut", "family_dir": str(tmp_path / "family"), "output_dir": str(tmp_path / "out"), "max_length": 10,
              "prompts": {"2_model_0": [0, 1], "1_model_0_sp": {"models": [0], "prompt_length": 2}}, "prompt_length": 4,
              "epochs": 1, "batch_size": 8, "lr": 0.3}
    out = run_experiment(params, progress=False, task_data=cut_for_four)
    models, tokenizer = load_family(family_members(tmp_path / "family"))
    report_run(out["config"].run_dir, out["results"], models, out["names"], tokenizer, out["data"], out["tables"]["test_by_model"],
               out["tables"]["transfer"], seeds=range(1), vocabulary_sample=10, progress=False)
    short = out["results"]["1_model_0_sp"]
    own_split = out["data"].for_prompt_length(2, tokenizer).tokenized["test"]
    assert max(own_split.lengths) > max(out["data"].tokenized["test"].lengths)
    expected = evaluate_prompt(models[:1], ["seed_0"], short.prompt, own_split, out["data"].verbalizer.token_ids).loss.item()
    on_cut_texts = evaluate_prompt(models[:1], ["seed_0"], short.prompt, out["data"].tokenized["test"], out["data"].verbalizer.token_ids).loss.item()
    assert abs(on_cut_texts - expected) > 1e-4                  # the two splits give another loss: the checks below can tell them apart
    tested = out["tables"]["test_by_model"].set_index("prompt").loss["1_model_0_sp"]
    transferred = out["tables"]["transfer"].query("prompt == '1_model_0_sp' and state == 'trained' and trained_on").loss.item()
    masked = pd.read_csv(token_masking_table_path(out["config"].run_dir / "tables", "1_model_0_sp")).unmasked.item()
    assert abs(tested - expected) < 1e-5 and abs(transferred - expected) < 1e-5 and abs(masked - expected) < 1e-5, (tested, transferred, masked, expected)
