"""The `ulmfit-multi` command through typer's CliRunner (expensive calls patched)."""

from __future__ import annotations


from unittest import mock

import pytest
from typer.testing import CliRunner

from ulmfit_multi import __version__
from ulmfit_multi.cli import app
from ulmfit_multi.config import RECIPES_DIR
from ulmfit_multi.langs import all_langs
from ulmfit_multi.pipeline import STAGE_NAMES
from ulmfit_multi.stages import RunResult, StageResult

STAGE_COMMANDS = ["fetch", "corpus", "tokenizer", "encode", "baselines", "pretrain", "finetune-lm", "classifier",
                  "evaluate", "table"]
OTHER_COMMANDS = ["recipe", "langs", "recipes", "status", "predict", "compare"]

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def no_mirror_env(monkeypatch):
    monkeypatch.delenv("ULMFIT_MULTI_MIRROR", raising=False)


@pytest.fixture
def fake_run(tmp_path):
    """Patch the pipeline entry point; it returns an empty run."""
    result = RunResult(tmp_path / "run", [StageResult("fetch", "skipped", "ab" * 32, tmp_path / "s")])
    with mock.patch("ulmfit_multi.pipeline.run_recipe", return_value=result) as fake:
        yield fake


def test_help_lists_every_stage_command_and_the_others():
    result = invoke("--help")
    assert result.exit_code == 0
    listed = set()
    for line in result.output.splitlines():
        words = line.strip(" │|").split()
        if words:
            listed.add(words[0])
    for name in STAGE_COMMANDS + OTHER_COMMANDS:
        assert name in listed, f"{name} missing from --help:\n{result.output}"


def test_stage_commands_cover_the_pipeline():
    assert [n.replace("_", "-") for n in STAGE_NAMES] == STAGE_COMMANDS


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"ulmfit-multi {__version__}"


def test_langs_lists_every_language():
    result = invoke("langs")
    assert result.exit_code == 0
    codes = {line.split()[0] for line in result.output.splitlines()[1:] if line.strip()}
    assert codes == {s.code for s in all_langs()}
    for spec in all_langs():
        assert spec.name in result.output


def test_recipes_lists_every_recipe():
    result = invoke("recipes")
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert listed == {p.stem for p in RECIPES_DIR.glob("*.toml")}


def test_bad_set_key_exits_2_naming_file_and_key():
    result = invoke("recipe", "mr", "--set", "pretrain.epoch=2")
    assert result.exit_code == 2
    assert "recipes/mr.toml" in result.output
    assert "pretrain.epoch" in result.output and "epochs" in result.output
    assert "Traceback" not in result.output


def test_unknown_preset_exits_2(tmp_path):
    result = invoke("status", "mr", "--preset", "smok", "--work-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "mr.toml" in result.output and "smoke" in result.output


def test_recipe_passes_resolved_arguments(fake_run, tmp_path, no_mirror_env):
    result = invoke("recipe", "mr", "--preset", "cpu", "--set", "pretrain.epochs=2", "--set", "classifier.lr=0.1",
                    "--mirror", str(tmp_path / "m"), "--data-dir", str(tmp_path / "d"),
                    "--work-dir", str(tmp_path / "w"), "--from", "pretrain", "--until", "classifier",
                    "--force", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    fake_run.assert_called_once()
    assert fake_run.call_args.args == ("mr",)
    assert fake_run.call_args.kwargs == {
        "preset": "cpu",
        "overrides": ["pretrain.epochs=2", "classifier.lr=0.1"],
        "mirror": tmp_path / "m",
        "data_dir": tmp_path / "d",
        "work_dir": tmp_path / "w",
        "from_stage": "pretrain",
        "only": None,
        "until": "classifier",
        "force": True,
        "device": "cpu",
        "progress": False,
    }
    assert "fetch" in result.output and "skipped" in result.output
    assert f"run folder: {tmp_path / 'run'}" in result.output


def test_recipe_defaults(fake_run, monkeypatch, no_mirror_env, tmp_path):
    monkeypatch.delenv("ULMFIT_MULTI_DATA")
    monkeypatch.delenv("ULMFIT_MULTI_WORK")
    result = invoke("recipe", "mr")
    assert result.exit_code == 0, result.output
    assert fake_run.call_args.kwargs == {
        "preset": "smoke", "overrides": [], "mirror": None, "data_dir": None, "work_dir": None,
        "from_stage": None, "only": None, "until": None, "force": False, "device": None, "progress": True,
    }


def test_locations_come_from_the_environment(fake_run, monkeypatch, tmp_path):
    monkeypatch.setenv("ULMFIT_MULTI_MIRROR", str(tmp_path / "env-mirror"))
    monkeypatch.setenv("ULMFIT_MULTI_WORK", str(tmp_path / "env-work"))
    result = invoke("recipe", "mr", "--only", "corpus")
    assert result.exit_code == 0, result.output
    kwargs = fake_run.call_args.kwargs
    assert kwargs["mirror"] == tmp_path / "env-mirror"
    assert kwargs["work_dir"] == tmp_path / "env-work"
    assert kwargs["only"] == "corpus"


def test_stage_command_runs_until_that_stage(fake_run, no_mirror_env):
    result = invoke("tokenizer", "mr", "--preset", "cpu", "--set", "tokenizer.vocab_size=100")
    assert result.exit_code == 0, result.output
    fake_run.assert_called_once()
    kwargs = fake_run.call_args.kwargs
    assert kwargs["until"] == "tokenizer" and kwargs["preset"] == "cpu"
    assert kwargs["overrides"] == ["tokenizer.vocab_size=100"]


def test_stage_command_force_recomputes_only_that_stage(fake_run, no_mirror_env):
    result = invoke("finetune-lm", "mr", "--force")
    assert result.exit_code == 0, result.output
    assert [c.kwargs.get("until") for c in fake_run.call_args_list] == ["finetune_lm", None]
    last = fake_run.call_args_list[-1].kwargs
    assert last["only"] == "finetune_lm" and last["force"] is True


def test_pretrain_command_is_a_stage_command(fake_run, no_mirror_env):
    result = invoke("pretrain", "mr")
    assert result.exit_code == 0, result.output
    assert fake_run.call_args.kwargs["until"] == "pretrain"


def test_pretrain_without_recipe_or_langs_is_a_usage_error():
    result = invoke("pretrain")
    assert result.exit_code == 2


def test_status_on_empty_work_dir_lists_every_stage_missing(tmp_path):
    result = invoke("status", "mr", "--work-dir", str(tmp_path / "work"))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()]
    assert [r[0] for r in rows] == STAGE_NAMES
    assert all(r[1] == "missing" and len(r[2]) == 12 for r in rows)
    assert not (tmp_path / "work").exists()  # status only looks


def test_status_uses_the_work_dir_from_the_environment():
    result = invoke("status", "mr", "--preset", "cpu")
    assert result.exit_code == 0, result.output
    assert result.output.count("missing") == len(STAGE_NAMES)


def test_only_with_missing_input_exits_2_with_advice(tmp_path, no_mirror_env):
    result = invoke("recipe", "mr", "--only", "tokenizer", "--work-dir", str(tmp_path / "w"),
                    "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert "'tokenizer' needs 'fetch'" in result.output
    assert "ulmfit-multi recipe mr --preset smoke --until fetch" in result.output
    assert not (tmp_path / "d").exists()  # nothing was downloaded
