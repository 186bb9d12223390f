"""The task-file check (`ulmfit-multi check`, and the fetch stage's first step)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmfit_multi.check import check_findings, check_recipe, check_tasks, format_check
from ulmfit_multi.cli import app
from ulmfit_multi.config import Config, Task
from ulmfit_multi.errors import DataError
from ulmfit_multi.paths import Paths

LABELS = {"-1": "negative", "0": "neutral", "1": "positive"}
RECIPE = """
[recipe]
langs = ["mr"]

[data.sha256]
"t/valid.csv" = "{valid_sha}"

[[tasks]]
name = "t"
text = "tweet"
labels = {{ "-1" = "negative", "0" = "neutral", "1" = "positive" }}
splits = {{ train = "t/train.csv", valid = "t/valid.csv", test = "t/test.csv" }}
"""


def _files(root: Path, **files: str) -> None:
    for name, text in files.items():
        (root / "t").mkdir(parents=True, exist_ok=True)
        (root / "t" / f"{name}.csv").write_text(text, encoding="utf-8")


def _cfg(**task) -> Config:
    cfg = Config()
    cfg.tasks = [Task(name="t", text="tweet", labels=LABELS,
                      splits={"train": "t/train.csv", "valid": "t/valid.csv", "test": "t/test.csv"}, **task)]
    return cfg


def _fetched(root: Path) -> dict:
    return {f"t/{n}.csv": {"path": str(root / "t" / f"{n}.csv") if (root / "t" / f"{n}.csv").exists() else None}
            for n in ("train", "valid", "test")}


def test_duplicates_and_texts_two_splits_share_are_reported(tmp_path: Path) -> None:
    _files(tmp_path, train="tweet,label\na,1\nb,0\na,1\nc,-1\n", valid="tweet,label\nd,1\nc,0\n",
           test="tweet,label\nb,0\ne,1\n")
    report = check_tasks(_cfg(), _fetched(tmp_path))
    t = report["t"]
    assert t["splits"]["train"]["rows"] == 4 and t["splits"]["train"]["duplicates"] == 1
    assert t["splits"]["train"]["duplicate_example"] == [2, 4]
    assert t["shared"] == {"test/train": {"texts": 1, "example": [2, 3]}, "valid/train": {"texts": 1, "example": [3, 5]}}
    findings = check_findings(report)
    assert "t train: 1 duplicate text in train.csv (e.g. line 4 repeats line 2)" in findings
    assert "t: 1 test text also in train (e.g. test line 2 = train line 3)" in findings


def test_a_missing_split_is_listed_not_fatal(tmp_path: Path) -> None:
    _files(tmp_path, train="tweet,label\na,1\n")
    assert check_tasks(_cfg(), _fetched(tmp_path))["t"]["unavailable"] == {
        "valid": "file not available: t/valid.csv", "test": "file not available: t/test.csv"}


@pytest.mark.parametrize("train, message", [
    ("text,label\na,1\n", "line 1: no column 'tweet'"),
    ("tweet,label\na,1\nb,5\n", "line 3: label '5'"),
    ("tweet,label\na,1\n\"\",1\n", "line 3: empty text"),
])
def test_a_bad_file_fails_with_file_and_line(tmp_path: Path, train: str, message: str) -> None:
    _files(tmp_path, train=train)
    with pytest.raises(DataError, match=rf"train\.csv: {message}"):
        check_tasks(_cfg(), _fetched(tmp_path))


def test_skip_mode_counts_bad_and_undecodable_rows(tmp_path: Path) -> None:
    _files(tmp_path, train="tweet,label\na,1\nb,5\n")
    (tmp_path / "t" / "train.csv").write_bytes((tmp_path / "t" / "train.csv").read_bytes() + b"\xff,1\nc,0\n")
    split = check_tasks(_cfg(on_bad_row="skip"), _fetched(tmp_path))["t"]["splits"]["train"]
    assert (split["rows"], split["skipped"], split["skipped_lines"]) == (2, 2, [3, 4])


def test_check_recipe_downloads_nothing_and_verifies_mirror_checksums(tmp_path: Path) -> None:
    import hashlib

    from ulmfit_multi.config import load_recipe

    mirror = tmp_path / "mirror"
    _files(mirror, train="tweet,label\na,1\n", valid="tweet,label\nb,0\n")
    good = hashlib.sha256((mirror / "t" / "valid.csv").read_bytes()).hexdigest()
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(valid_sha=good), encoding="utf-8")
    paths = Paths.resolve(tmp_path / "data", mirror, tmp_path / "work")
    report = check_recipe(load_recipe(recipe), paths)
    assert report["files"]["t/test.csv"]["path"] is None
    assert report["files"]["t/test.csv"]["reason"] == "not found, and no URL is known"
    assert any("t: rows train 1, valid 1; unavailable: test" in line for line in format_check(report))
    recipe.write_text(RECIPE.format(valid_sha="0" * 64), encoding="utf-8")
    with pytest.raises(DataError, match=r"valid\.csv: sha256 differs"):
        check_recipe(load_recipe(recipe), paths)


def test_check_command_exits_2_naming_the_file_and_line(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    _files(mirror, train="tweet,label\na,1\n", valid="tweet,label\nb,0\n", test="tweet,label\nc,9\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(valid_sha="x").replace('[data.sha256]\n"t/valid.csv" = "x"\n', ""),
                      encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(recipe), "--preset", "base", "--mirror", str(mirror),
                                 "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "test.csv: line 2: label '9'" in result.output and "Traceback" not in result.output
    (mirror / "t" / "test.csv").write_text("tweet,label\nc,1\n", encoding="utf-8")
    result = runner.invoke(app, ["check", str(recipe), "--preset", "base", "--mirror", str(mirror),
                                 "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "task files ok" in result.output
