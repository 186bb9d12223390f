"""The commands of cli_models.py (export, predict, new-recipe, bench predict) and the recipe/lang folder options."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmfit_multi.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def no_folder_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """--recipes / --langs-dir write these variables; the test's monkeypatch restores them."""
    monkeypatch.delenv("ULMFIT_MULTI_RECIPES", raising=False)
    monkeypatch.delenv("ULMFIT_MULTI_LANGS", raising=False)


def test_langs_and_recipes_say_where_each_came_from(tmp_path: Path, no_folder_env: None) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "mr-en.toml").write_text('code = "mr-en"\nname = "Marathi-English"\nscripts = ["Deva", "Latn"]\n',
                                               encoding="utf-8")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.toml").write_text('[recipe]\nlangs = ["mr-en"]\n', encoding="utf-8")
    result = invoke("--langs-dir", str(tmp_path / "l"), "--recipes", str(tmp_path / "r"), "langs")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "$ULMFIT_MULTI_LANGS: " + str((tmp_path / "l" / "mr-en.toml").resolve()) in lines["mr-en"]
    assert "built-in: " in lines["mr"]
    result = invoke("recipes")  # the folders stay in the environment for this process
    assert "mine   langs=mr-en" in result.output and "[$ULMFIT_MULTI_RECIPES: " in result.output
    assert "[built-in: " in result.output


def test_new_recipe_writes_a_recipe_the_run_command_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          no_folder_env: None) -> None:
    monkeypatch.chdir(tmp_path)
    with open("train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], ["छान", "pos"], ["वाईट", "neg"]])
    result = invoke("new-recipe", "--lang", "mr", "--train", "train.csv", "--test", "train.csv", "--text", "text",
                    "--label", "label", "--name", "mine")
    assert result.exit_code == 0, result.output
    assert "written: recipes/mine.toml (task mine: classes neg, pos; splits train, test)" in result.output
    status = invoke("status", "mine", "--preset", "smoke", "--work-dir", str(tmp_path / "work"))
    assert status.exit_code == 0 and "missing" in status.output
    again = invoke("new-recipe", "--lang", "mr", "--train", "train.csv", "--text", "text", "--label", "label",
                   "--name", "mine")
    assert again.exit_code == 2 and "already exists" in again.output


def test_predict_and_export_refuse_confused_arguments(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", str(tmp_path)])
    assert result.exit_code == 2 and "give texts to classify, or --input" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path), "x", "--input", "a.txt"])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path / "nothing.zip"), "x"])
    assert result.exit_code == 2 and "no such bundle" in result.output
    result = runner.invoke(app, ["export", str(tmp_path), "--out", "x", "--fine-tuned", "t"])
    assert result.exit_code == 2 and "--fine-tuned goes with --lm" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path), "x", "--quantize", "int4"])
    assert result.exit_code == 2 and "int8" in result.output


def test_the_new_commands_are_listed() -> None:
    result = invoke("--help")
    for name in ("export", "predict", "new-recipe"):
        assert f" {name} " in result.output
    assert " predict " in invoke("bench", "--help").output
