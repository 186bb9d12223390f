"""Label-efficiency curves (the `curves` stage, curves.py) on the tiny recipe of test_pipeline.py.

One run of the ordinary stages (2 seeds, every baseline, valid-tuned offsets) is shared by the module; each
test then runs the curves stage with its own budgets, so only that stage runs (about 30 s in all, 2 cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ulmfit_multi.cli import app
from ulmfit_multi.config import load_recipe
from ulmfit_multi.errors import RecipeError
from ulmfit_multi.pipeline import STAGE_NAMES, STAGES, run_recipe
from ulmfit_multi.runfolder import read_records
from ulmfit_multi.stages import compute_fingerprints

from test_pipeline import RECIPE, write_tiny

# the ordinary run: 2 seeds, every baseline, valid-tuned offsets (so the capped valid split also fits those)
BASE = ["evaluate.seeds=[0, 1]", 'evaluate.baselines=["majority", "tfidf-lr", "fasttext"]', "classifier.calibrate=true",
        "curves.min_steps=0"]  # the tiny task's budgets at classifier.epochs (min_steps has its own test)
ULMFIT = [f"ULMFiT {s}{bias}" for bias in ("", " + valid-tuned bias") for s in ("fwd", "bwd", "ensemble")]
SYSTEMS = ULMFIT + ["majority", "tfidf-lr", "fasttext"]
N_TRAIN, N_VALID = 240, 60  # the tiny task's train and valid rows, 3 balanced classes


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny models train as fast on one thread, and two threads on a busy 2-core machine crawl."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny recipe run once through every ordinary stage (curves.budgets empty)."""
    root = tmp_path_factory.mktemp("curves")
    mirror, recipe = write_tiny(root, N_TRAIN, N_VALID)
    kw = dict(preset="base", mirror=mirror, work_dir=root / "work", data_dir=root / "data", progress=False,
              device="cpu")
    with pytest.MonkeyPatch.context() as mp:  # the module's run writes nothing outside root
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        base = run_recipe(recipe, overrides=BASE, **kw)
    return {"recipe": recipe, "kw": kw, "base": base}


def run_curves(tiny: dict, *budget_items: str):
    return run_recipe(tiny["recipe"], overrides=BASE + list(budget_items), **tiny["kw"])


def test_without_budgets_the_stage_does_nothing(tiny: dict) -> None:
    curves = tiny["base"]["curves"]
    assert curves.status == "ran" and curves.summary == {"budgets": []}
    assert sorted(p.name for p in curves.path.iterdir()) == ["_stage.json"]  # no table, no plot
    out = CliRunner().invoke(app, ["curves", str(tiny["base"].run_dir)])
    assert out.exit_code == 0, out.output
    assert "no label budgets in this run" in out.output


def test_budgets_change_no_other_stage_and_train_each_system_at_each_budget(tiny: dict) -> None:
    result = run_curves(tiny, 'curves.budgets=[30, 90, "all"]')
    # every other stage is a cache hit: same fingerprints, nothing retrained
    assert [(s.name, s.status) for s in result.stages] == [(n, "skipped") for n in STAGE_NAMES[:-1]] + [("curves", "ran")]
    base_fps = {s.name: s.fingerprint for s in tiny["base"].stages}
    assert {s.name: s.fingerprint for s in result.stages if s.name != "curves"} == {
        n: fp for n, fp in base_fps.items() if n != "curves"}
    assert result["curves"].fingerprint != base_fps["curves"]
    assert result["curves"].summary["budgets"] == {"tiny-sent": [30, 90, N_TRAIN]}
    assert result["curves"].summary["classifiers_trained"] == 2 * 2 * 2  # 2 budgets x 2 directions x 2 seeds

    out = result["curves"].path
    for suffix in ("md", "csv", "json", "tex"):
        assert (out / f"curves-tiny-sent.{suffix}").stat().st_size > 0
    assert (out / "plots" / "curves-tiny-sent.png").read_bytes()[:4] == b"\x89PNG"
    records = read_records(out / "records.jsonl")
    for k in (30, 90, N_TRAIN):
        for system in SYSTEMS:
            seeds = {r["seed"] for r in records if r["budget"] == k and r["system"] == system}
            assert seeds == ({0} if (system, k) == ("majority", N_TRAIN) else {0, 1}), (k, system)
    assert {r["system"] for r in records} == set(SYSTEMS)  # no pooled-seed or fused rows

    # the whole-split column is the run's own evaluate and baselines records, seed by seed
    run_dir = tiny["base"].run_dir
    ordinary = {(r["system"], r["seed"]): r["metrics"] for stage in ("09-evaluate", "05-baselines")
                for r in read_records(run_dir / stage / "records.jsonl")}
    whole = [r for r in records if r["budget"] == N_TRAIN]
    assert len(whole) == 6 * 2 + 1 + 2 * 2
    for r in whole:
        assert r["metrics"] == ordinary[(r["system"], r["seed"])], r["system"]

    table = (out / "curves-tiny-sent.md").read_text(encoding="utf-8")
    assert "| system | 30 labels (acc) | 90 labels (acc) | all 240 labels (acc) |" in table
    for system in SYSTEMS:
        assert f"| {system} |" in table
    assert "LM fine-tuning: unchanged at every budget" in table and 'curves.valid = "cap"' in table
    data = json.loads((out / "curves-tiny-sent.json").read_text(encoding="utf-8"))
    assert {(a["task"], a["system"]) for a in data["aggregate"]} == {
        (col, s) for col in ("30 labels", "90 labels", "all 240 labels") for s in SYSTEMS}

    # the subsets: stratified, nested across budgets, valid capped at the budget (90 >= 60 valid rows: all)
    y_train = np.load(run_dir / "04-encode" / "tasks" / "tiny-sent" / "train" / "labels.npy")
    for seed in (0, 1):
        small, large = (json.loads((out / "classifiers" / "tiny-sent" / f"n{k}" / f"rows-seed{seed}.json").read_text())
                        for k in (30, 90))
        assert len(small["train"]) == 30 and set(small["train"]) <= set(large["train"])
        assert np.bincount(y_train[small["train"]]).tolist() == [10, 10, 10]
        assert len(small["valid"]) == 30 and large["valid"] is None
        clf = out / "classifiers" / "tiny-sent" / "n30" / "fwd" / f"seed{seed}"
        assert np.load(clf / "proba_valid.npy").shape == (30, 3) and np.load(clf / "proba_test.npy").shape == (60, 3)
        assert json.loads((clf / "done.json").read_text())["train_docs"] <= 30 * 2  # 2 epochs of 30 labels

    shown = CliRunner().invoke(app, ["curves", str(result.run_dir)])
    assert shown.exit_code == 0, shown.output
    assert "| system | 30 labels (acc)" in shown.output and "plots/curves-tiny-sent.png" in shown.output
    kw = tiny["kw"]
    sets = [x for item in BASE + ['curves.budgets=[30, 90, "all"]'] for x in ("--set", item)]
    again = CliRunner().invoke(app, ["curves", str(tiny["recipe"]), "--preset", "base", *sets, "--mirror",
                                     str(kw["mirror"]), "--work-dir", str(kw["work_dir"]), "--data-dir",
                                     str(kw["data_dir"]), "--device", "cpu", "-q"])
    assert again.exit_code == 0, again.output
    assert "curves       skipped" in again.output and f"run folder: {result.run_dir}" in again.output
    assert "| system | 30 labels (acc)" in again.output


def test_an_interrupted_curves_stage_resumes_without_redoing_finished_classifiers(tiny: dict, monkeypatch) -> None:
    from ulmfit_multi import jobs

    real, calls = jobs.train_one_classifier, []

    def crashing(*args, **kwargs):
        calls.append(kwargs["train_rows"])
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "train_one_classifier", crashing)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_curves(tiny, "curves.budgets=[20]")  # 2 directions x 2 seeds: the third classifier fails
    calls.clear()
    monkeypatch.setattr(jobs, "train_one_classifier", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    resumed = run_curves(tiny, "curves.budgets=[20]")
    assert len(calls) == 2 and resumed["curves"].summary["classifiers_trained"] == 2  # the two unfinished ones
    again = run_curves(tiny, "curves.budgets=[20]")
    assert again["curves"].status == "skipped" and len(calls) == 2


def test_full_valid_mode_selects_on_the_whole_valid_split(tiny: dict) -> None:
    result = run_curves(tiny, "curves.budgets=[20]", 'curves.valid="full"')
    out = result["curves"].path
    rows = json.loads((out / "classifiers" / "tiny-sent" / "n20" / "rows-seed0.json").read_text())
    assert len(rows["train"]) == 20 and rows["valid"] is None
    assert np.load(out / "classifiers" / "tiny-sent" / "n20" / "bwd" / "seed1" / "proba_valid.npy").shape == (60, 3)
    assert 'curves.valid = "full"' in (out / "curves-tiny-sent.md").read_text(encoding="utf-8")
    assert not (out / "curves-tiny-sent.md").read_text(encoding="utf-8").count("all 240 labels")  # no "all" asked


def test_a_classifier_given_every_row_is_the_classifier_stage_s_own(tiny: dict, tmp_path: Path) -> None:
    """The row subsets add nothing when they are the whole splits: same probabilities, bit for bit."""
    from ulmfit_multi.baselines import tfidf_logreg
    from ulmfit_multi.evaluate import metric_fn
    from ulmfit_multi.jobs import train_one_classifier

    run_dir = tiny["base"].run_dir
    cfg = load_recipe(tiny["recipe"], "base", BASE)
    task_dir = run_dir / "04-encode" / "tasks" / "tiny-sent"
    out = tmp_path / "clf"
    train_one_classifier(cfg, task_dir, run_dir / "04-encode", run_dir / "07-finetune_lm" / "tiny-sent" / "bwd" /
                         "model.pt", "bwd", 1, out, n_classes=3, score=metric_fn("accuracy", 3), device="cpu",
                         progress=False, train_rows=np.arange(N_TRAIN), valid_rows=np.arange(N_VALID))
    stage = run_dir / "08-classifier" / "tiny-sent" / "bwd" / "seed1"
    for name in ("proba_valid.npy", "proba_test.npy"):
        np.testing.assert_array_equal(np.load(out / name), np.load(stage / name))
    texts = json.loads((task_dir / "train" / "texts.json").read_text(encoding="utf-8"))
    test_texts = json.loads((task_dir / "test" / "texts.json").read_text(encoding="utf-8"))
    _, proba = tfidf_logreg(texts, np.load(task_dir / "train" / "labels.npy"), test_texts, seed=1)
    saved = run_dir / "05-baselines" / "probas" / "tiny-sent" / "tfidf-lr" / "seed1" / "proba_test.npy"
    np.testing.assert_array_equal(proba, np.load(saved))  # encode's texts are the ones the baselines stage read


def test_batches_of_a_row_subset_hold_those_documents_labels_and_texts(tiny: dict) -> None:
    from ulmfit_multi.builders import classifier_batches
    from ulmfit_multi.tokens import TokenStore

    task_dir = tiny["base"].run_dir / "04-encode" / "tasks" / "tiny-sent"
    texts = json.loads((task_dir / "train" / "texts.json").read_text(encoding="utf-8"))
    labels = np.load(task_dir / "train" / "labels.npy")
    store = TokenStore.open(task_dir / "train")
    rows = np.array([17, 3, 200, 41])

    class RowOfText:  # a subword sampler that encodes a text as its row number in the split (+1: not padding)
        def encode_documents(self, batch: list[str], boundary: str, sample: bool) -> list[list[int]]:
            return [[texts.index(batch[0]) + 1]]

    plain = classifier_batches(task_dir, "train", 2, shuffle=False, seed=0, backwards=False, max_len=64, rows=rows)
    sampled = classifier_batches(task_dir, "train", 2, shuffle=True, seed=0, backwards=False, max_len=64, rows=rows,
                                 sampler=RowOfText())
    assert [list(d) for d in plain.docs] == [list(store.doc(int(i))) for i in rows]
    np.testing.assert_array_equal(plain.labels, labels[rows])
    for x, _, y, idx in sampled.batches(0):
        np.testing.assert_array_equal(x[:, 0].numpy() - 1, rows[idx.numpy()])  # the texts of the same rows
        np.testing.assert_array_equal(y.numpy(), labels[rows[idx.numpy()]])


# ------------------------------------------------------------------ the recipe keys


def test_min_steps_raises_the_epochs_of_small_budgets_only() -> None:
    from ulmfit_multi.curves_config import budget_epochs

    assert budget_epochs(5, 0, 100, 32) == 5  # off
    assert budget_epochs(5, 300, 100, 32) == 75  # 4 batches an epoch: 75 epochs make 300 steps
    assert budget_epochs(5, 300, 3000, 32) == 5  # 94 batches an epoch: 5 epochs already make 470 steps


def test_min_steps_trains_a_small_budget_for_more_epochs(tiny: dict) -> None:
    result = run_curves(tiny, "curves.budgets=[20]", "curves.min_steps=12", "evaluate.seeds=[0]")
    out = result["curves"].path
    epochs = {json.loads((out / "classifiers" / "tiny-sent" / "n20" / d / "seed0" / "done.json").read_text())["epochs"]
              for d in ("fwd", "bwd")}
    batch = load_recipe(tiny["recipe"], "base").classifier.batch_size
    assert epochs == {max(load_recipe(tiny["recipe"], "base").classifier.epochs, -(-12 // -(-20 // batch)))}
    assert "curves.min_steps = 12 steps" in (out / "curves-tiny-sent.md").read_text(encoding="utf-8")


def test_budgets_are_recipe_keys_validated_on_load(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE + '\n[curves]\nbudgets = [100, 300, "all"]\n', encoding="utf-8")
    cfg = load_recipe(recipe, "base")
    assert cfg.curves.budgets == [100, 300, "all"] and cfg.curves.valid == "cap" and cfg.curves.min_steps == 500
    assert load_recipe("mr", "smoke").curves.budgets == []  # off by default
    set_ = load_recipe("mr", "smoke", ['curves.budgets=[50, "all"]', 'curves.valid="full"']).curves
    assert (set_.budgets, set_.valid) == ([50, "all"], "full")
    for item, message in [('curves.budgets=[100, "most"]', "'curves.budgets' holds 'most'"),
                          ("curves.budgets=[1]", "expected numbers of labels >= 2"),
                          ("curves.budgets=[2]", "fewer labels than task 'tiny-sent' has classes \\(3\\)"),
                          ("curves.budgets=[100, 100]", "a budget is named twice"),
                          ("curves.budgets=[1.5]", "'curves.budgets\\[0\\]' must be int or str"),
                          ("curves.budgets=100", "'curves.budgets' must be a list"),
                          ('curves.valid="half"', "'curves.valid' is 'half'; expected one of cap, full"),
                          ("curves.min_steps=-1", "'curves.min_steps' is -1; expected a number of steps >= 0"),
                          ("curves.sizes=[100]", "unknown key 'curves.sizes'")]:
        with pytest.raises(RecipeError, match=message):
            load_recipe(recipe, "base", [item])


def test_budgets_leave_every_other_stage_s_fingerprint_unchanged() -> None:
    for name in ("mr", "ta"):
        base = compute_fingerprints(STAGES, load_recipe(name, "smoke"))
        on = compute_fingerprints(STAGES, load_recipe(name, "smoke", ['curves.budgets=[100, 300, "all"]']))
        full = compute_fingerprints(STAGES, load_recipe(name, "smoke", ["curves.budgets=[100]", 'curves.valid="full"']))
        assert [s for s in base if on[s] != base[s]] == ["curves"] == [s for s in base if full[s] != on[s]]
