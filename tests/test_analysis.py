"""Tests of `explainable_soft_prompts.analysis` on tiny random BERTs, and of the released-artifacts notebook."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explainable_soft_prompts.analysis import (
    assignment_table, compress_prompt, embedding_tables, important_token_loss, knn_vote, masking_and_compression,
    read_token_masking_csv, token_masking_matrix, token_masking_matrix_per_variant, tokens_per_model, zero_rows)
from explainable_soft_prompts.data import tiny_tokenizer
from explainable_soft_prompts.models import tiny_family
from explainable_soft_prompts.training import toy_task_data

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT.parent / "shared" / "paper_artifacts"
NAMES = ["m0", "m1", "m2"]


@pytest.fixture(scope="module")
def setup():
    tokenizer = tiny_tokenizer()
    models = tiny_family(3, tokenizer)
    data = toy_task_data(tokenizer, n_train=8, n_eval=24, prompt_length=6)
    prompt = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    return tokenizer, models, data.tokenized["test"], data.verbalizer.token_ids, prompt


def test_batched_masking_equals_per_variant(setup):
    _, models, split, targets, prompt = setup
    matrix, unmasked = token_masking_matrix(models, prompt, split, targets, NAMES, batch_size=10)
    reference, reference_unmasked = token_masking_matrix_per_variant(models, prompt, split, targets, NAMES, batch_size=10)
    assert matrix.shape == (3, 6) and list(matrix.index) == NAMES and list(matrix.columns) == list(range(6))
    assert np.abs(matrix.to_numpy() - reference.to_numpy()).max() < 1e-5
    assert np.abs(unmasked.to_numpy() - reference_unmasked.to_numpy()).max() < 1e-5


def test_zero_row_masking_leaves_losses_unchanged(setup):
    _, models, split, targets, prompt = setup
    matrix, unmasked = token_masking_matrix(models, zero_rows(prompt, [2]), split, targets, NAMES)
    assert np.abs(matrix[2].to_numpy() - unmasked.to_numpy()).max() < 1e-5
    assert np.abs(matrix.drop(columns=2).to_numpy() - unmasked.to_numpy()[:, None]).max() > 1e-6   # other tokens do matter


def test_knn_vote_assigns_model_rows_to_their_model(setup):
    tokenizer, _, _, _, _ = setup
    models = tiny_family(3, tokenizer)
    with torch.no_grad():   # separate the models' embedding clouds, as separately trained models' spaces are
        for m, model in enumerate(models): model.get_input_embeddings().weight += torch.randn(16, generator=torch.Generator().manual_seed(m))
    prompt = embedding_tables(models)[1][5:15]
    for metric in ("cosine", "euclidean"):
        vote = knn_vote(prompt, models, NAMES, k=7, metric=metric)
        assert set(vote.model) == {"m1"} and set(vote.certainty) == {1.0}
    # without separation the 1-nearest row is the token itself
    plain = tiny_family(3, tokenizer)
    assert set(knn_vote(embedding_tables(plain)[1][5:15], plain, NAMES, k=1).model) == {"m1"}


def test_compressed_length_equals_kept_tokens(setup):
    _, models, split, targets, prompt = setup
    assert compress_prompt(prompt, [4, 1, 1]).shape == (2, 16)
    assignment = pd.DataFrame({"token": range(6), "model": ["m0", "m1", "m0", "m0", "m1", "m0"]})
    table = masking_and_compression(models, prompt, assignment, split, targets, NAMES, seeds=range(2))
    compressed = table[table.variant.isin(["compressed", "random_compressed"])].groupby("model").n_tokens.unique()
    assert {m: list(v) for m, v in compressed.items()} == {"m0": [4], "m1": [2], "m2": [0]}
    assert set(table.variant) == {"full", "masked", "compressed", "random_masked", "random_compressed"}


def test_assignment_counts(setup):
    matrix = pd.DataFrame([[1.0, 5.0, 2.0], [3.0, 1.0, 2.5]], index=["a", "b"])
    table = assignment_table(matrix, pd.Series({"a": 1.0, "b": 2.0}))
    assert table.model.tolist() == ["b", "a", "b"] and table.relative_model.tolist() == ["b", "a", "a"]
    assert tokens_per_model(table, ["a", "b", "c"]).tolist() == [1, 2, 0]


def test_read_space_aligned_csv(tmp_path):
    path = tmp_path / "0_1_token_drop_out_test.csv"
    path.write_text("seed        ,0    ,1\ngoogle/multiberts-seed_0 , 1.5 ,2\ngoogle/multiberts-seed_1,3, 0.5 \n")
    matrix = read_token_masking_csv(path)
    assert list(matrix.index) == ["google/multiberts-seed_0", "google/multiberts-seed_1"]
    assert list(matrix.columns) == [0, 1] and matrix.to_numpy().tolist() == [[1.5, 2.0], [3.0, 0.5]]


def test_released_artifacts_notebook(tmp_path):
    if not ARTIFACTS.is_dir(): pytest.skip(f"no released artifacts at {ARTIFACTS}")
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "released"
    papermill.execute_notebook(str(REPO_ROOT / "nbs" / "experiments" / "released_artifacts.ipynb"), str(tmp_path / "executed.ipynb"),
                               parameters={"artifacts_dir": str(ARTIFACTS), "output_dir": str(out)}, cwd=str(REPO_ROOT),
                               kernel_name="python3", progress_bar=False)
    for name in ("important_token_loss.csv", "similarity.csv", "token_assignment.csv", "masking_heatmap.png"):
        assert (out / name).stat().st_size > 0, name
    importance = pd.read_csv(out / "important_token_loss.csv")
    assert list(importance.columns) == ["task", "category", "n_prompts", "mean", "std"]
    categories = importance.groupby("task").category.apply(set).to_dict()
    base = {"2_model", "5_model", "10_model", "5_model_init", "5_model_train"}
    assert categories["imdb"] == base and categories["emotion"] == base
    assert categories["mnli"] == base | {"5_model_e2", "5_model_e10", "5_model_e20"}
    by = importance.set_index(["task", "category"]).n_prompts
    assert by["imdb", "5_model_init"] == 5 and by["imdb", "5_model_train"] == 5 and by["mnli", "5_model_e2"] == 3
    assert importance["mean"].gt(0).all() and importance["std"].ge(0).all()
    # the notebook's values are the analysis module's (one code path)
    pd.testing.assert_frame_equal(importance, important_token_loss(ARTIFACTS), check_exact=False, rtol=1e-12)
    similarity = pd.read_csv(out / "similarity.csv")
    assert list(similarity.columns) == ["prompt_a", "prompt_b", "aggregation", "measure", "value"]
    assert set(similarity.prompt_a) == {"1_model_0", "1_model_1", "2_model_0"} and len(similarity) == 9 * 6
    assignment = pd.read_csv(out / "token_assignment.csv")
    assert {"run", "token", "model"} <= set(assignment.columns) and assignment.model.str.startswith("google/multiberts-seed_").all()


def test_every_analysis_on_a_prompt_trained_by_the_training_loop(tmp_path):
    "The whole analysis chain on a prompt that `train_prompt` trained jointly through a tiny 3-model family."
    from explainable_soft_prompts.analysis import (back_translation, embedding_map, group_masking_matrix, knn_summary,
                                                   masking_heatmap, near_duplicate_groups, prompt_similarity_table, save_figure)
    from explainable_soft_prompts.training import TrainConfig, train_prompt
    tokenizer = tiny_tokenizer()
    models = tiny_family(3, tokenizer)
    data = toy_task_data(tokenizer, n_train=32, n_eval=16, prompt_length=6)
    trained = train_prompt(models, data, TrainConfig(prompt_length=6, epochs=2, batch_size=8, lr=0.3, init_seed=2), progress=False)
    split, targets, prompt = data.tokenized["test"], data.verbalizer.token_ids, trained.prompt
    assert not torch.equal(prompt, trained.init_prompt)

    matrix, unmasked = token_masking_matrix(models, prompt, split, targets, NAMES)
    reference, _ = token_masking_matrix_per_variant(models, prompt, split, targets, NAMES)
    assert np.abs(matrix.to_numpy() - reference.to_numpy()).max() < 1e-5
    assignment = assignment_table(matrix, unmasked)
    assert len(assignment) == 6 and set(assignment.model) <= set(NAMES)
    assert tokens_per_model(assignment, NAMES).sum() == 6

    groups = near_duplicate_groups(prompt, threshold=0.95)
    assert sorted(i for g in groups for i in g) == list(range(6))        # every row in exactly one group
    grouped, _ = group_masking_matrix(models, prompt, groups, split, targets, NAMES)
    singletons = [g[0] for g in groups if len(g) == 1]
    assert np.abs(grouped[singletons].to_numpy() - matrix[singletons].to_numpy()).max() < 1e-5

    summary = knn_summary(prompt, models, assignment, NAMES, k=7)
    assert summary["uniform_chance"] == pytest.approx(1 / 3) and 0 <= summary["euclidean_cosine_agreement"] <= 1
    assert all(0 <= summary[f"{m}_chance"] <= 1 for m in ("cosine", "euclidean"))

    words = back_translation(prompt, models, tokenizer, NAMES)
    assert len(words) == 6 * 3 * 2 and words.columns.size >= 4        # tokens x models x (cosine, euclidean)

    similarity = prompt_similarity_table({"trained": prompt}, {"trained": trained.init_prompt})
    assert len(similarity) == 2 * 2 * 6 and similarity.value.notna().all()

    table = masking_and_compression(models, prompt, assignment, split, targets, NAMES, seeds=range(2))
    kept = assignment.groupby("model").size()
    compressed = table[table.variant == "compressed"].set_index("model").n_tokens
    assert all(compressed[m] == kept[m] for m in kept.index)

    heatmap = save_figure(masking_heatmap(matrix, unmasked), tmp_path / "heatmap.png")
    tsne = save_figure(embedding_map(models, prompt, NAMES, token_models=assignment.model.tolist(), vocabulary_sample=15), tmp_path / "tsne.png")
    assert heatmap.stat().st_size > 1000 and tsne.stat().st_size > 1000


def spy_on_report_passes(monkeypatch, record) -> list:
    "Wrap the report's masking and compression passes; each call appends `(name, *record(args, kwargs))` to the list returned."
    from explainable_soft_prompts import report
    seen = []
    def spy(function):
        def wrapped(*args, **kwargs):
            seen.append((function.__name__, *record(args, kwargs)))
            return function(*args, **kwargs)
        return wrapped
    for name in ("group_masking_losses", "masking_and_compression"): monkeypatch.setattr(report, name, spy(getattr(report, name)))
    return seen


def test_analyse_prompt_runs_masking_and_compression_at_the_given_batch_size(setup, tmp_path, monkeypatch):
    "A run's `eval_batch_size` reaches the report's masking and compression (a GPU wants bigger forwards than a CPU)."
    from explainable_soft_prompts import report
    from explainable_soft_prompts.training import TrainResult
    tokenizer, models, split, targets, prompt = setup
    seen = spy_on_report_passes(monkeypatch, lambda args, kwargs: (kwargs.get("batch_size", args[5] if len(args) > 5 else None),))
    result = TrainResult(prompt, torch.zeros_like(prompt), [], NAMES)
    out = report.analyse_prompt(tmp_path / "small", "3_model_0", result, models, NAMES, tokenizer, split, targets, seeds=range(1), batch_size=7)
    assert seen == [("group_masking_losses", 7), ("masking_and_compression", 7)]
    default = report.analyse_prompt(tmp_path / "default", "3_model_0", result, models, NAMES, tokenizer, split, targets, seeds=range(1))
    assert seen[2:] == [("group_masking_losses", 128), ("masking_and_compression", 128)]
    assert np.abs(out["matrix"].to_numpy() - default["matrix"].to_numpy()).max() < 1e-5     # the forward size changes no result
    assert np.abs(out["compression"].loss.to_numpy() - default["compression"].loss.to_numpy()).max() < 1e-5


def test_model_name_mismatch_is_an_error_not_empty_tokens(setup, monkeypatch):
    "Released names (`google/multiberts-seed_0`) against a run's short names: an error before any model runs, not n_tokens=0 everywhere."
    from explainable_soft_prompts import analysis
    from explainable_soft_prompts.analysis import check_assignment, tokens_by_model, vote_alignment
    _, models, split, targets, prompt = setup
    long = [f"google/{n}" for n in NAMES]
    assignment = pd.DataFrame({"token": range(6), "model": [long[i % 3] for i in range(6)]})
    with pytest.raises(ValueError, match=r"not among the model names \['m0', 'm1', 'm2'\].*Fix:"): tokens_per_model(assignment, NAMES)
    with pytest.raises(ValueError, match="google/m0"): tokens_by_model(assignment, NAMES)
    def no_pass(*args, **kwargs): raise AssertionError("a pass over the split ran before the check")
    monkeypatch.setattr(analysis, "split_loss_accuracy", no_pass)
    with pytest.raises(ValueError, match="not among the model names"): masking_and_compression(models, prompt, assignment, split, targets, NAMES)
    short = assignment.assign(model=[NAMES[i % 3] for i in range(6)])
    with pytest.raises(ValueError, match=r"not exactly 0\.\.5"): masking_and_compression(models, prompt, short.iloc[1:], split, targets, NAMES)
    with pytest.raises(ValueError, match=r"not exactly 0\.\.5"): masking_and_compression(models, prompt, short.assign(token=range(1, 7)), split, targets, NAMES)
    assert tokens_per_model(short, NAMES).tolist() == [2, 2, 2] and check_assignment(short, NAMES, n_tokens=6) == NAMES
    vote = pd.DataFrame({"token": range(6), "model": [NAMES[i % 3] for i in range(6)], "certainty": 1.0})
    with pytest.raises(ValueError, match="not among the model names"): vote_alignment(vote, assignment, 3, model_names=NAMES)
    with pytest.raises(ValueError, match="do not match"): vote_alignment(vote, assignment, 3)
    with pytest.raises(ValueError, match="same tokens"): vote_alignment(vote, short.assign(token=range(6, 12)), 3)   # an empty merge
    assert vote_alignment(vote, short, 3, model_names=NAMES)["alignment"] == 1.0


def test_read_token_masking_csv_rejects_damaged_files(tmp_path):
    def read(text):
        path = tmp_path / "0_1_token_drop_out_test.csv"
        path.write_text(text)
        return read_token_masking_csv(path)
    with pytest.raises(ValueError, match=r"line 3: 2 cells, but the header has 3.*Fix:"): read("seed,0,1\na,1,2\nb,3\n")
    with pytest.raises(ValueError, match=r"line 2: 4 cells"): read("seed,0,1\na,1,2,7\nb,3,4\n")
    with pytest.raises(ValueError, match=r"model\(s\) \['a'\] have several rows.*Fix:"): read("seed,0,1\na,1,2\na ,3,4\n")
    with pytest.raises(ValueError, match=r"is empty.*Fix:"): read("")
    with pytest.raises(ValueError, match="no token columns"): read("seed\na\n")
    with pytest.raises(ValueError, match="'x' is not a number"): read("seed,0,1\na,1,x\n")
    assert read("seed,0,1\n\na,1,2\n").to_numpy().tolist() == [[1.0, 2.0]]


def test_report_warns_once_about_prompts_the_tables_leave_out(caplog):
    from explainable_soft_prompts import report
    names = ["1_model_0", "2_model_1", "3_model_0", "5_model_init_1", "5_model_0_e2", "1_model_4_sp", "mine"]   # the study's short prompts are expected
    with caplog.at_level("WARNING", logger="explainable_soft_prompts.report"):
        assert report.warn_left_out(names) == {"3_model_0": "3_model", "mine": "other"}
    assert len(caplog.records) == 1 and caplog.records[0].name == "explainable_soft_prompts.report"
    message = caplog.records[0].getMessage()
    assert "3_model_0 (3_model)" in message and "mine (other)" in message and "5_model_init_1" not in message and "_sp" not in message and "Fix:" in message
    caplog.clear()
    report.warn_left_out(["1_model_0", "10_model_2", "5_model_train_3"])
    assert not caplog.records


def test_analyse_prompt_runs_at_the_given_precision_and_device(setup, tmp_path, monkeypatch):
    "The run's bf16 and device reach masking and compression, and bf16 keys the cache: changing it recomputes."
    from explainable_soft_prompts import report
    from explainable_soft_prompts.training import TrainResult
    tokenizer, models, split, targets, prompt = setup
    seen = spy_on_report_passes(monkeypatch, lambda args, kwargs: (kwargs.get("bf16"), kwargs.get("device")))
    result = TrainResult(prompt, torch.zeros_like(prompt), [], NAMES)
    run = lambda **kw: report.analyse_prompt(tmp_path, "3_model_0", result, models, NAMES, tokenizer, split, targets, seeds=range(1), **kw)
    bf16 = run(bf16=True, device="cpu")
    assert seen == [("group_masking_losses", True, "cpu"), ("masking_and_compression", True, "cpu")]
    key_file = report.token_masking_table_path(tmp_path, "3_model_0").with_name("3_model_0.csv.key")
    assert key_file.read_text() == report.analysis_key("3_model_0", result, split, range(1), 7, bf16=True)
    run(bf16=True, device="cpu")
    assert len(seen) == 2                                                   # same precision: read back
    fp32 = run()
    assert seen[2:] == [("group_masking_losses", False, None), ("masking_and_compression", False, None)]   # changed: recomputed
    assert key_file.read_text() == report.analysis_key("3_model_0", result, split, range(1), 7)
    difference = np.abs(bf16["matrix"].to_numpy() - fp32["matrix"].to_numpy()).max()
    assert 0 < difference < 0.05                                            # bf16 ran: close to fp32, not equal


def _plain_importance(csv_path) -> float:
    "Important-token loss the way upstream reads the CSVs: np.genfromtxt, each token's largest loss over models, mean over tokens."
    values = np.genfromtxt(csv_path, delimiter=",", skip_header=1)[:, 1:]
    return float(values.max(axis=0).mean())


def test_released_imdb_headline_values():
    "Table 3/5 figures from the released IMDb masking matrices, recomputed here with plain numpy from the files the README names."
    if not ARTIFACTS.is_dir(): pytest.skip(f"no released artifacts at {ARTIFACTS}")
    table = important_token_loss(ARTIFACTS).set_index(["task", "category"])
    def plain(runs):
        values = [_plain_importance(next((ARTIFACTS / run / "checkpoints").glob("*_token_drop_out_test.csv"))) for run in runs]
        return len(values), float(np.mean(values)), float(np.std(values))
    expected = {"5_model": plain([f"5_model_{i}" for i in range(5)]),                      # README: IMDb 5_model_0.._4
                "10_model": plain([f"10_model_{i}" for i in range(5)]),
                "5_model_init": plain(["5_model_0"] + [f"5_model_init_{i}" for i in range(1, 5)])}   # init_0 is 5_model_0
    for category, (n, mean, std) in expected.items():
        row = table.loc[("imdb", category)]
        assert row.n_prompts == n == 5, category
        assert row["mean"] == pytest.approx(mean, rel=1e-12) and row["std"] == pytest.approx(std, rel=1e-12, abs=1e-15), category
    # the token split of 5_model_0 with the released model names: every token owned, by the model with the highest loss
    path = next((ARTIFACTS / "5_model_0" / "checkpoints").glob("*_token_drop_out_test.csv"))
    matrix = read_token_masking_csv(path)
    owners = np.bincount(np.genfromtxt(path, delimiter=",", skip_header=1)[:, 1:].argmax(axis=0), minlength=5)
    counts = tokens_per_model(assignment_table(matrix), [f"google/multiberts-seed_{i}" for i in range(5)])
    assert counts.tolist() == owners.tolist() and counts.sum() == 16
    with pytest.raises(ValueError, match="not among the model names"):
        tokens_per_model(assignment_table(matrix), [f"multiberts-seed_{i}" for i in range(5)])
