"""End to end: a tiny recipe over an in-code mirror (MediaWiki dump + MahaSent-style CSVs), run twice."""

from __future__ import annotations

import bz2
import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.pipeline import STAGE_NAMES, run_recipe
from ulmfit_multi.runfolder import read_records

WORDS = {
    "positive": ["छान", "सुंदर", "आवडला", "उत्तम", "मस्त", "आनंद"],
    "negative": ["वाईट", "कंटाळवाणा", "खराब", "राग", "दुःख", "निराशा"],
    "neutral": ["आज", "शहर", "बातमी", "सरकार", "पाऊस", "रस्ता"],
}
FILLER = "हा तो ती आहे होता चित्रपट गोष्ट लोक घर पाणी शाळा काम दिवस वेळ गाव देश भाषा मराठी".split()


def _sentence(rng: random.Random, label: str | None = None) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(5, 12))]
    if label:
        for _ in range(2):
            words.insert(rng.randrange(len(words)), rng.choice(WORDS[label]))
    return " ".join(words)


def _dump(path: Path, rng: random.Random) -> None:
    pages = []
    for i in range(40):
        body = "\n\n".join(" ".join(_sentence(rng, rng.choice(list(WORDS))) + "." for _ in range(6)) for _ in range(3))
        pages.append(f"""  <page>
    <title>लेख {i}</title>
    <ns>0</ns>
    <id>{i + 1}</id>
    <revision>
      <id>{100 + i}</id>
      <text xml:space="preserve">'''लेख {i}''' {{{{माहितीचौकट|नाव=x}}}} [[दुवा|{FILLER[i % len(FILLER)]}]] {body}
[[वर्ग:चाचणी]]</text>
    </revision>
  </page>""")
    xml = f"""<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="mr">
  <siteinfo>
    <sitename>विकिपीडिया</sitename>
    <dbname>mrwiki</dbname>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">चित्र</namespace>
      <namespace key="14" case="first-letter">वर्ग</namespace>
    </namespaces>
  </siteinfo>
{chr(10).join(pages)}
</mediawiki>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(xml.encode("utf-8")))


def _task_csv(path: Path, rng: random.Random, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    codes = {"negative": "-1", "neutral": "0", "positive": "1"}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["", "marathi_sentence", "label"])  # MahaSent_MR layout: unnamed index column
        for i in range(n):
            label = list(WORDS)[i % 3]
            w.writerow([i, _sentence(rng, label), codes[label]])


RECIPE = """
[recipe]
langs = ["mr"]

[[corpus.sources]]
name = "wiki"
format = "mediawiki-xml"
path = "mr/wiki/tiny.xml.bz2"

[corpus]
lid = false
min_chars = 5

[tokenizer]
vocab_size = 200
max_sentences = 5000

[model]
emb_size = 16
hidden_size = 24
n_layers = 2
bptt = 16

[pretrain]
epochs = 1
batch_size = 8
max_batches_per_epoch = 20

[finetune_lm]
epochs = 1
batch_size = 8
max_batches_per_epoch = 10

[classifier]
epochs = 2
batch_size = 16
max_len = 64

[evaluate]
seeds = [0]
baselines = ["majority", "tfidf-lr"]

[[tasks]]
name = "tiny-sent"
text = "marathi_sentence"
label = "label"
labels = { "-1" = "negative", "0" = "neutral", "1" = "positive" }
splits = { train = "mr/task/train.csv", valid = "mr/task/valid.csv", test = "mr/task/test.csv" }

[[reference]]
task = "tiny-sent"
system = "Made-up reference"
metric = "accuracy"
value = 0.5
cite = "nobody 2026"
"""


def write_tiny(root: Path, n_train: int = 240, n_valid: int = 60) -> tuple[Path, Path]:
    """The tiny recipe's mirror (a small dump, a 3-class task's train/valid/test CSVs) and recipe file under
    `root`: (mirror, recipe). Shared by the modules that run the tiny recipe."""
    rng = random.Random(0)
    mirror = root / "mirror"
    _dump(mirror / "mr/wiki/tiny.xml.bz2", rng)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", 60)):
        _task_csv(mirror / f"mr/task/{split}.csv", rng, n)
    recipe = root / "tiny.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    return mirror, recipe


@pytest.fixture
def tiny_setup(tmp_path: Path) -> dict[str, Path]:
    mirror, recipe = write_tiny(tmp_path)
    return {"mirror": mirror, "recipe": recipe, "work": tmp_path / "work", "data": tmp_path / "data"}


def test_recipe_end_to_end_then_cached(tiny_setup: dict[str, Path]) -> None:
    kw = dict(preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"], data_dir=tiny_setup["data"],
              progress=False, device="cpu")
    first = run_recipe(tiny_setup["recipe"], **kw)
    assert [s.name for s in first.stages] == STAGE_NAMES
    assert all(s.status == "ran" for s in first.stages)
    table = (first.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    for system in ("ULMFiT fwd", "ULMFiT bwd", "ULMFiT ensemble", "majority", "tfidf-lr", "Made-up reference"):
        assert system in table
    assert (first.run_dir / "config.resolved.toml").exists()

    second = run_recipe(tiny_setup["recipe"], **kw)
    assert all(s.status == "skipped" for s in second.stages)

    third = run_recipe(tiny_setup["recipe"], overrides=["classifier.lr=0.005"], **kw)
    ran = [s.name for s in third.stages if s.status == "ran"]
    assert ran == ["classifier", "evaluate", "table", "curves"]

    sampled = run_recipe(tiny_setup["recipe"], overrides=["classifier.subword_sampling=true", "classifier.calibrate=true"],
                         **kw)
    assert [s.name for s in sampled.stages if s.status == "ran"] == ["classifier", "evaluate", "table", "curves"]
    table = (sampled.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    assert "ULMFiT ensemble + valid-tuned bias" in table
    biases = json.loads((sampled.run_dir / "09-evaluate" / "class_bias.json").read_text())
    assert set(biases) == {f"tiny-sent/{s}/seed0" for s in ("fwd", "bwd", "ensemble")}
    assert len(biases["tiny-sent/fwd/seed0"]) == 3


def test_fusion_with_tfidf_is_the_saved_probabilities_mixed_by_the_valid_weight(tiny_setup: dict[str, Path]) -> None:
    from ulmfit_multi.evaluate import compute_metrics, ensemble_proba, fuse_proba

    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu",
                        overrides=["evaluate.fuse_with=['tfidf-lr']"])
    run = result.run_dir
    saved = run / "05-baselines" / "probas" / "tiny-sent" / "tfidf-lr" / "seed0"
    tfidf = {role: np.load(saved / f"proba_{role}.npy") for role in ("valid", "test")}
    assert tfidf["valid"].shape == (60, 3) and tfidf["test"].shape == (60, 3)
    y = np.load(run / "04-encode" / "tasks" / "tiny-sent" / "test" / "labels.npy")
    np.testing.assert_array_equal(np.load(saved / "labels_test.npy"), y)
    records = {r["system"]: r for r in read_records(run / "09-evaluate" / "records.jsonl")}
    tfidf_record = next(r for r in read_records(run / "05-baselines" / "records.jsonl") if r["system"] == "tfidf-lr")
    assert compute_metrics(y, tfidf["test"].argmax(1), 3) == tfidf_record["metrics"]

    w = json.loads((run / "09-evaluate" / "fusion_weights.json").read_text())["tiny-sent/ensemble + tfidf-lr/seed0"]
    clf = run / "08-classifier" / "tiny-sent"
    ulmfit = ensemble_proba([np.load(clf / d / "seed0" / "proba_test.npy") for d in ("fwd", "bwd")])
    fused = fuse_proba(ulmfit, tfidf["test"], w)
    assert records["ULMFiT ensemble + tfidf-lr"]["metrics"] == compute_metrics(y, fused.argmax(1), 3)
    assert "ULMFiT ensemble + tfidf-lr" in (run / "10-table" / "results.md").read_text(encoding="utf-8")
    assert not any("seeds" in s for s in records)  # one seed: no pooled ensemble


def test_fusion_refuses_probabilities_scored_against_other_labels(tiny_setup: dict[str, Path]) -> None:
    from ulmfit_multi.errors import StageError
    from ulmfit_multi.evaluate import baseline_probas

    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="baselines")
    run = result.run_dir
    task_dir = run / "04-encode" / "tasks" / "tiny-sent"
    valid, test = baseline_probas(run / "05-baselines", "tiny-sent", "tfidf-lr", 0, task_dir)
    assert valid.shape == (60, 3) and test.shape == (60, 3)
    labels = run / "05-baselines" / "probas" / "tiny-sent" / "tfidf-lr" / "seed0" / "labels_test.npy"
    np.save(labels, np.roll(np.load(labels), 1))
    with pytest.raises(StageError, match="the test labels differ"):
        baseline_probas(run / "05-baselines", "tiny-sent", "tfidf-lr", 0, task_dir)
    with pytest.raises(StageError, match="no saved probabilities for fusing 'fasttext'"):
        baseline_probas(run / "05-baselines", "tiny-sent", "fasttext", 0, task_dir)


def test_predictor_loads_a_finished_run(tiny_setup: dict[str, Path]) -> None:
    from ulmfit_multi.predict import Predictor

    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu")
    predictor = Predictor.from_run(result.run_dir)
    out = predictor.predict(["हा चित्रपट छान सुंदर आहे", "वाईट खराब गोष्ट"])
    assert len(out) == 2
    assert all(label in ("negative", "neutral", "positive") and 0.0 <= p <= 1.0 for label, p in out)

    # a seed the run did not train names the ones it did
    from ulmfit_multi.errors import StageError

    with pytest.raises(StageError, match=r"no classifier for seed 3 of task 'tiny-sent'; the run trained seed 0"):
        Predictor.from_run(result.run_dir, seed=3)
    # texts whose label means little are flagged, and the command warns about them
    assert Predictor.flag_texts(["", "  ", "😀🎉!!", "छान 😀", "10/10"]) == [
        "empty text", "empty text", "no letters or digits (only emoji, symbols or punctuation)", "", ""]
    from typer.testing import CliRunner

    from ulmfit_multi.cli import app

    cli = CliRunner().invoke(app, ["predict", str(result.run_dir), "", "😀😀", "छान आहे"])
    assert cli.exit_code == 0, cli.output
    assert "warning: '': empty text" in cli.output and "warning: '😀😀': no letters" in cli.output
    assert "warning: 'छान आहे'" not in cli.output


@pytest.mark.slow
def test_pretrain_data_parallel_on_ray_matches_one_worker(tiny_setup: dict[str, Path]) -> None:
    """pretrain.workers=2 trains each direction with Ray Train (DDP, gloo): same loss curve as one worker."""
    pytest.importorskip("ray.train", reason="needs ray[train] (pyarrow)")
    import json

    kw = dict(preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"], data_dir=tiny_setup["data"],
              progress=False, device="cpu", until="pretrain")
    curves = {}
    for workers in (1, 2):
        res = run_recipe(tiny_setup["recipe"], overrides=["model.drop_mult=0.0", f"pretrain.workers={workers}"], **kw)
        assert res.stages[-1].name == "pretrain" and res.stages[-1].status == "ran"
        out = res.run_dir / "06-pretrain"
        assert not (out / "ray_train").exists()
        curves[workers] = [[json.loads(x)["train_loss"] for x in (out / d / "history.jsonl").read_text().splitlines()
                            if json.loads(x)["kind"] == "step"] for d in ("fwd", "bwd")]
        assert (out / "fwd" / "model.pt").exists() and (out / "bwd" / "done.json").exists()
    for a, b in zip(curves[1], curves[2]):
        assert len(a) == len(b) > 5
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_finetuning_refuses_task_text_from_another_tokenizer(tmp_path: Path) -> None:
    from ulmfit_multi.errors import StageError
    from ulmfit_multi.tokens import check_same_tokenizer

    lm = {"vocab_size": 8000, "tokenizer_sha256": "a" * 64}
    check_same_tokenizer(lm, {"vocab_size": 8000, "tokenizer_sha256": "a" * 64}, tmp_path)
    check_same_tokenizer(lm, {"vocab_size": 8000}, tmp_path)  # stores written before the checksum was recorded
    with pytest.raises(StageError, match="another tokenizer"):
        check_same_tokenizer(lm, {"vocab_size": 8000, "tokenizer_sha256": "b" * 64}, tmp_path)
    with pytest.raises(StageError, match="vocab 4000 vs 8000"):
        check_same_tokenizer(lm, {"vocab_size": 4000}, tmp_path)


def test_lm_corpus_never_holds_a_test_text_of_any_task(tiny_setup: dict[str, Path]) -> None:
    """A second task whose train split re-uses the first task's test comments (as FIRE 2021 does FIRE 2020's)."""
    mirror = tiny_setup["mirror"]
    with open(mirror / "mr/task/test.csv", encoding="utf-8") as f:
        test_rows = list(csv.reader(f))[1:]
    shared = test_rows[:25]
    with open(mirror / "mr/task/train.csv", encoding="utf-8") as f:
        other_train = list(csv.reader(f))[1:100] + shared
    (mirror / "mr/other").mkdir()
    with open(mirror / "mr/other/train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["", "marathi_sentence", "label"], *other_train])
    recipe = tiny_setup["recipe"].read_text(encoding="utf-8").replace("[corpus]", "[corpus]\ntask_text = true")
    recipe = recipe.replace("[[reference]]", """[[tasks]]
name = "other-sent"
text = "marathi_sentence"
label = "label"
labels = { "-1" = "negative", "0" = "neutral", "1" = "positive" }
splits = { train = "mr/other/train.csv" }

[[reference]]""")
    tiny_setup["recipe"].write_text(recipe, encoding="utf-8")
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=mirror, work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="tokenizer")
    corpus_dir = result.run_dir / "02-corpus"
    docs = set((corpus_dir / "task" / "task-00000.txt").read_text(encoding="utf-8").split("\n\n"))
    test_texts = {row[1] for row in test_rows}
    assert not docs & test_texts
    assert {row[1] for row in other_train[:99]} - test_texts <= docs  # the other train comments are kept
    summary = json.loads((corpus_dir / "_stage.json").read_text())["summary"]
    assert summary["task_text_dropped_test_overlap"] == 25


# ------------------------------------------------------------------ input files in the cache key (issue 21)


def _run(setup: dict[str, Path], **extra):
    return run_recipe(setup["recipe"], preset="base", mirror=setup["mirror"], work_dir=setup["work"],
                      data_dir=setup["data"], progress=False, device="cpu", **extra)


def _ran(result) -> list[str]:
    return [s.name for s in result.stages if s.status == "ran"]


def test_a_test_split_added_to_the_mirror_is_scored_on_the_next_run(tiny_setup: dict[str, Path]) -> None:
    test_csv = tiny_setup["mirror"] / "mr/task/test.csv"
    kept = test_csv.read_bytes()
    test_csv.unlink()
    first = _run(tiny_setup)
    table = (first.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    assert "ULMFiT" not in table and "| majority |" not in table  # nothing could be scored
    assert "tiny-sent: n/a, test: file not available: mr/task/test.csv" in table

    test_csv.write_bytes(kept)
    second = _run(tiny_setup)
    # the corpus does not read task files (corpus.task_text is off); the tokenizer reads train and test
    assert _ran(second) == [n for n in STAGE_NAMES if n != "corpus"]
    table = (second.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    assert "n/a" not in table
    assert read_records(second.run_dir / "09-evaluate" / "records.jsonl")


def test_a_changed_task_file_reruns_the_stages_that_read_it_and_a_touched_one_nothing(
        tiny_setup: dict[str, Path]) -> None:
    import os

    first = _run(tiny_setup)
    assert _ran(first) == STAGE_NAMES
    for f in tiny_setup["mirror"].rglob("*.*"):  # same bytes, new mtime: rehashed, same identity
        os.utime(f, None)
    assert _ran(_run(tiny_setup)) == []

    valid = tiny_setup["mirror"] / "mr/task/valid.csv"
    rows = valid.read_text(encoding="utf-8").splitlines()
    rows[1] = rows[1].rsplit(",", 1)[0] + ",0" if not rows[1].endswith(",0") else rows[1][:-1] + "1"
    valid.write_text("\n".join(rows) + "\n", encoding="utf-8")
    # valid is read by fetch, encode and baselines; the tokenizer reads train and test, the corpus no task file
    assert _ran(_run(tiny_setup)) == ["fetch", "encode", "baselines", "pretrain", "finetune_lm", "classifier",
                                      "evaluate", "table", "curves"]


def test_what_reruns_when_which_files_change() -> None:
    """The stages' `data` declarations: a corpus source never reruns the baselines, a valid file never the
    tokenizer, and the corpus reads task files only with corpus.task_text."""
    from ulmfit_multi.config import load_recipe
    from ulmfit_multi.pipeline import STAGES
    from ulmfit_multi.stages import compute_fingerprints

    def changed(cfg, group: str) -> list[str]:
        base = compute_fingerprints(STAGES, cfg, {})
        other = compute_fingerprints(STAGES, cfg, {group: {"some/file": "sha256:" + "0" * 64}})
        return [n for n in STAGE_NAMES if base[n] != other[n]]

    downstream = ["pretrain", "finetune_lm", "classifier", "evaluate", "table", "curves"]
    mr = load_recipe("mr", "smoke")  # corpus.task_text off
    assert changed(mr, "sources") == ["fetch", "corpus", "tokenizer", "encode", *downstream]
    assert changed(mr, "tasks") == ["fetch", "encode", "baselines", *downstream]
    assert changed(mr, "tasks:train") == ["tokenizer", "encode", *downstream]
    assert changed(mr, "tasks:valid") == []  # a valid file is also in "tasks", which covers it
    ta = load_recipe("ta", "smoke")  # corpus.task_text on
    assert changed(ta, "tasks") == ["fetch", "corpus", "tokenizer", "encode", "baselines", *downstream]
    assert changed(ta, "sources") == ["fetch", "corpus", "tokenizer", "encode", *downstream]
    assert compute_fingerprints(STAGES, ta, {}) == compute_fingerprints(STAGES, ta)  # no identities: as before


def _set_line(index: int, text: str):
    def edit(lines: list[str]) -> None:
        lines[index] = text
    return edit


BAD_FILES = {  # file, edit of its lines (None: a byte that is not UTF-8), what the error says
    "misspelt label column": ("valid.csv", _set_line(0, ",marathi_sentence,lable"), "line 1: no label column"),
    "label missing from the mapping": ("train.csv", _set_line(2, "1,छान आहे,2"), "line 3: label '2'"),
    "invalid UTF-8": ("test.csv", None, "line 2: invalid UTF-8"),
    "empty text": ("train.csv", _set_line(4, '3,"  ",0'), "line 5: empty text"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_task_file_fails_at_fetch_in_seconds_before_the_corpus(tiny_setup: dict[str, Path], case: str) -> None:
    import time

    from ulmfit_multi.check import check_recipe
    from ulmfit_multi.config import load_recipe
    from ulmfit_multi.errors import DataError
    from ulmfit_multi.paths import Paths

    name, edit, message = BAD_FILES[case]
    path = tiny_setup["mirror"] / "mr/task" / name
    if edit is None:
        head, rest = path.read_bytes().split(b"\n", 1)
        path.write_bytes(head + b"\n0,\xff" + rest[2:])
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        edit(lines)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_recipe(tiny_setup["recipe"], "base")
    started = time.perf_counter()
    with pytest.raises(DataError, match=rf"{name}: {message}"):
        check_recipe(cfg, Paths.resolve(tiny_setup["data"], tiny_setup["mirror"], tiny_setup["work"]))
    assert time.perf_counter() - started < 5
    started = time.perf_counter()
    with pytest.raises(DataError, match=rf"{name}: {message}"):
        _run(tiny_setup)
    assert time.perf_counter() - started < 10
    assert not (tiny_setup["work"] / "store" / "corpus").exists()


def test_skipped_rows_and_sampling_are_footnotes_and_the_command_repeats_the_run(tiny_setup: dict[str, Path]) -> None:
    train = tiny_setup["mirror"] / "mr/task/train.csv"
    lines = train.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",7"  # a label outside the mapping, on line 4
    train.write_bytes(("\n".join(lines) + "\n").encode() + b"999,bad \xff byte,1\n")  # undecodable, line 242
    tiny_setup["recipe"].write_text(tiny_setup["recipe"].read_text(encoding="utf-8").replace(
        'label = "label"', 'label = "label"\non_bad_row = "skip"'), encoding="utf-8")
    result = _run(tiny_setup, overrides=["data.max_task_rows=200", "classifier.epochs=1"])
    table = (result.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    assert 'tiny-sent train: 2 bad rows skipped (on_bad_row = "skip"), lines 4, 242' in table
    assert "tiny-sent train: a sample of 200 of its 239 rows (data.max_task_rows)" in table
    command = next(line for line in table.splitlines() if line.startswith("- command:"))
    assert command == (f"- command: `ulmfit-multi recipe {tiny_setup['recipe']} --preset base --set "
                       f"data.max_task_rows=200 --set classifier.epochs=1 --mirror {tiny_setup['mirror']} "
                       f"--data-dir {tiny_setup['data']} --work-dir {tiny_setup['work']} --device cpu`")
    invocation = json.loads((result.run_dir / "run.json").read_text())["invocation"]
    assert invocation["overrides"] == ["data.max_task_rows=200", "classifier.epochs=1"]


KILL_DRIVER = '''
"""Run the tiny recipe; KILL_AT=<stage>:<n> SIGKILLs this process at the n-th training step of that stage
(counted in this process), KILL_AT=<stage>:end right after one of its trainers returns (its model.pt is
written, the pipeline's done.json not yet)."""
import os, signal, sys
from ulmfit_multi import train, train_classifier
from ulmfit_multi.pipeline import run_recipe

stage, _, when = os.environ.get("KILL_AT", "").partition(":")
steps = 0

def killing(fn):
    def wrapped(*args, **kwargs):
        out_dir = str(args[4])  # train_lm / train_classifier(model, train, valid, cfg, out_dir, ...)
        if f"/store/{stage}/" not in out_dir:
            return fn(*args, **kwargs)
        def on_step(info):
            global steps
            steps += 1
            if when.isdigit() and steps == int(when):
                os.kill(os.getpid(), signal.SIGKILL)
        result = fn(*args, **kwargs, on_step=on_step)
        if when == "end":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped

train.train_lm = killing(train.train_lm)
train_classifier.train_classifier = killing(train_classifier.train_classifier)
mirror, work, data, recipe = sys.argv[1:5]
run_recipe(recipe, preset="base", mirror=mirror, work_dir=work, data_dir=data, progress=False, device="cpu",
           overrides=["pretrain.checkpoint_minutes=0"])  # pretrain: a checkpoint each step; the others: each epoch
'''


@pytest.mark.slow
def test_runs_killed_inside_each_training_stage_resume_to_the_uninterrupted_table(tiny_setup: dict[str, Path]) -> None:
    """SIGKILL at several points inside pretrain, finetune_lm and classifier, rerun after each: the final table
    equals an uninterrupted run's. After every kill, nothing half-written looks finished."""
    import os
    import signal
    import subprocess
    import sys

    driver = tiny_setup["work"].parent / "driver.py"
    driver.write_text(KILL_DRIVER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(work: Path, kill_at: str = "") -> int:
        args = [sys.executable, str(driver), str(tiny_setup["mirror"]), str(work), str(tiny_setup["data"]),
                str(tiny_setup["recipe"])]
        return subprocess.run(args, env={**env, "KILL_AT": kill_at}, capture_output=True, timeout=600).returncode

    def finished_folders_are_complete(work: Path, killed_stage: str) -> None:
        for folder in (work / "store").glob("*/*"):
            if folder.is_dir() and "." not in folder.name:  # a finished stage folder, not .partial/.lock/.old
                assert (folder / "_stage.json").exists(), folder
        for done in (work / "store").rglob("done.json"):  # a finished direction / classifier has its weights
            assert (done.parent / "model.pt").exists(), done
            json.loads(done.read_text())
        (run_dir,) = (work / "runs").glob("tiny-base-*")  # the --set item names the folder
        stages = {s["name"]: s for s in json.loads((run_dir / "run.json").read_text())["stages"]}
        assert stages[killed_stage]["status"] == "running"  # not "ran": RunFolder does not treat it as finished
        assert not list((work / "store" / killed_stage).glob("*/_stage.json")), killed_stage

    reference = tiny_setup["work"].parent / "reference"
    assert run(reference) == 0
    work = tiny_setup["work"]
    # tiny recipe: 20 steps per LM direction, 10 per fine-tuning direction, 2 epochs of 15 per classifier; the
    # steps are counted from the start of each (resumed) run
    for kill_at in ("pretrain:3", "pretrain:end", "pretrain:12", "finetune_lm:2", "finetune_lm:end",
                    "finetune_lm:6", "classifier:3", "classifier:end", "classifier:20", "classifier:8"):
        assert run(work, kill_at) == -signal.SIGKILL, kill_at
        finished_folders_are_complete(work, kill_at.split(":")[0])
    assert run(work) == 0

    def table(root: Path) -> tuple[list, list[str]]:
        (out,) = (root / "runs").glob("tiny-base-*/10-table")
        lines = (out / "results.md").read_text(encoding="utf-8").splitlines()
        return json.loads((out / "results.json").read_text())["records"], [x for x in lines if "command" not in x]

    assert table(work) == table(reference)
    leftovers = [p for p in (work / "store").rglob("*") if p.name.endswith((".tmp", ".partial", ".lock", ".old"))]
    assert not leftovers  # stale locks of the killed runs were taken over, .partial folders published
