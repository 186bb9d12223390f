"""The `ulmfit-multi` command through typer's CliRunner (expensive calls patched)."""

from __future__ import annotations

import json
from pathlib import Path
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
                  "evaluate", "table", "curves"]
OTHER_COMMANDS = ["recipe", "langs", "recipes", "status", "check", "predict", "compare", "trial", "bench"]

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
        "mirror": str(tmp_path / "m"),
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
    assert kwargs["mirror"] == str(tmp_path / "env-mirror")
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


def _run_folder(path: Path, stages: list[dict] | None = None) -> Path:
    """A run folder with a resolved config and, given `stages`, a run.json listing them."""
    path.mkdir(parents=True)
    (path / "config.resolved.toml").write_text('preset = "smoke"\n', encoding="utf-8")
    if stages is not None:
        (path / "run.json").write_text(json.dumps({"recipe": "mr", "preset": "smoke", "stages": stages}),
                                       encoding="utf-8")
    return path


def _entry(name: str, status: str, path: Path, seconds: float = 1.5) -> dict:
    path.mkdir(parents=True, exist_ok=True)
    return {"name": name, "status": status, "fingerprint": "ab" * 6, "path": str(path), "seconds": seconds}


def test_table_with_a_recipe_runs_its_stages_up_to_table(fake_run, no_mirror_env, tmp_path):
    result = invoke("table", "mr", "--preset", "cpu", "--set", "classifier.lr=0.1", "--work-dir", str(tmp_path / "w"),
                    "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    fake_run.assert_called_once()
    assert fake_run.call_args.args == ("mr",)
    kwargs = fake_run.call_args.kwargs
    assert kwargs["until"] == "table" and kwargs["preset"] == "cpu" and kwargs["overrides"] == ["classifier.lr=0.1"]
    assert kwargs["work_dir"] == tmp_path / "w" and kwargs["device"] == "cpu" and kwargs["progress"] is False
    assert f"run folder: {tmp_path / 'run'}" in result.output

    toml = invoke("table", str(RECIPES_DIR / "mr.toml"))  # a recipe file, by path
    assert toml.exit_code == 0, toml.output
    assert fake_run.call_args.args == (str(RECIPES_DIR / "mr.toml"),)
    assert fake_run.call_args.kwargs["until"] == "table"

    forced = invoke("table", "mr", "--force")
    assert forced.exit_code == 0, forced.output
    assert fake_run.call_args.kwargs["only"] == "table" and fake_run.call_args.kwargs["force"] is True


def test_table_with_run_folders_gathers_them(tmp_path):
    runs = [_run_folder(tmp_path / "runs" / "mr-cpu"), _run_folder(tmp_path / "runs" / "ta-cpu")]
    written = {"md": tmp_path / "out" / "results.md"}
    with mock.patch("ulmfit_multi.tables_gather.gather_runs", return_value=written) as gather, \
            mock.patch("ulmfit_multi.pipeline.run_recipe") as recipe:
        result = invoke("table", *map(str, runs), "--out", str(tmp_path / "out"), "--title", "T")
        one = invoke("table", str(runs[0]))
    assert result.exit_code == 0 and one.exit_code == 0, result.output + one.output
    assert gather.call_args_list[0].args == (runs, tmp_path / "out")
    assert gather.call_args_list[0].kwargs == {"title": "T"}
    assert gather.call_args_list[1].args == ([runs[0]], Path("results"))
    assert f"md: {written['md']}" in result.output
    recipe.assert_not_called()


def test_table_names_what_is_neither_a_run_folder_nor_a_recipe(tmp_path, no_mirror_env):
    not_run = tmp_path / "just-a-folder"
    not_run.mkdir()
    result = invoke("table", str(not_run))
    assert result.exit_code == 2 and "not a run folder" in result.output
    result = invoke("table", "mrr")
    assert result.exit_code == 2 and "unknown recipe 'mrr'" in result.output and "did you mean 'mr'" in result.output


def test_status_of_a_run_folder_lists_its_stages_and_partial_results(tmp_path):
    store = tmp_path / "store"
    run = _run_folder(tmp_path / "runs" / "mr-cpu", [
        _entry("encode", "skipped", store / "encode" / "e1"),
        _entry("classifier", "running", store / "classifier" / "c1.partial", seconds=0.0),
    ])
    with mock.patch("ulmfit_multi.partial.partial_table", return_value="| mahasent | ULMFiT fwd | 1 of 3 |\n") as table:
        result = invoke("status", str(run), "--task", "mahasent")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["encode", "skipped", "1.5s", str(store / "encode" / "e1")]
    assert lines[1].split() == ["classifier", "running", "0.0s", str(store / "classifier" / "c1.partial")]
    assert "evaluate has not run" in result.output and "| mahasent | ULMFiT fwd | 1 of 3 |" in result.output
    assert table.call_args.args == (run,) and table.call_args.kwargs == {"tasks": ["mahasent"]}


def test_status_of_a_finished_run_shows_no_partial_results(tmp_path):
    store = tmp_path / "store"
    run = _run_folder(tmp_path / "runs" / "mr-cpu", [
        _entry("classifier", "ran", store / "classifier" / "c1"),
        _entry("evaluate", "ran", store / "evaluate" / "v1"),
    ])
    with mock.patch("ulmfit_multi.partial.partial_table") as table:
        result = invoke("status", str(run))
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()] == [["classifier", "ran"], ["evaluate", "ran"]]
    table.assert_not_called()


def test_status_of_a_run_folder_without_run_json_lists_its_links(tmp_path):
    run = _run_folder(tmp_path / "runs" / "mr-cpu")
    (tmp_path / "store" / "c1").mkdir(parents=True)
    (run / "08-classifier").symlink_to(tmp_path / "store" / "c1")
    with mock.patch("ulmfit_multi.partial.partial_table", return_value="TABLE\n"):
        result = invoke("status", str(run))
    assert result.exit_code == 0, result.output
    assert "no run.json" in result.output and "classifier   linked" in result.output and "TABLE" in result.output


def test_status_of_a_folder_that_is_not_a_run(tmp_path):
    result = invoke("status", str(tmp_path))
    assert result.exit_code == 2 and "not a run folder" in result.output


TRIAL = {"run": "r", "task": "mahasent", "metric": "accuracy", "seed": 1, "set": ["classifier.epochs=3"],
         "random_encoder": False, "device": "cpu", "out": None,
         "systems": {"fwd": {"valid": 0.5, "test": 0.25, "kept_epoch": 2, "epochs": [[0.4, 0.5]], "seconds": 3.0},
                     "bwd": {"valid": 0.6, "test": 0.35, "kept_epoch": 1, "epochs": [[0.4, 0.6]], "seconds": 3.0},
                     "ensemble": {"valid": 0.7, "test": 0.45}}}


def test_trial_passes_its_arguments_and_prints_the_scores(tmp_path):
    with mock.patch("ulmfit_multi.trial.classifier_trial", return_value=TRIAL) as trial:
        result = invoke("trial", str(tmp_path / "run"), "mahasent", "--set", "classifier.epochs=3", "--seed", "1",
                        "--direction", "both", "--out", str(tmp_path / "out"), "--device", "cpu", "--random-encoder",
                        "-q")
    assert result.exit_code == 0, result.output
    assert trial.call_args.args == (tmp_path / "run", "mahasent")
    kwargs = trial.call_args.kwargs
    assert {k: v for k, v in kwargs.items() if k != "on_epoch"} == {
        "overrides": ["classifier.epochs=3"], "seed": 1, "direction": "both", "out": tmp_path / "out",
        "device": "cpu", "random_encoder": True, "progress": False}
    assert "| ensemble | 70.00 | 45.00 |" in result.output and "| fwd | 50.00 | 25.00 | 2 |" in result.output
    assert "classifier.epochs=3" in result.output


def test_trial_defaults_and_json(tmp_path):
    with mock.patch("ulmfit_multi.trial.classifier_trial", return_value=TRIAL) as trial:
        result = invoke("trial", str(tmp_path / "run"), "mahasent", "--json")
    assert result.exit_code == 0, result.output
    kwargs = trial.call_args.kwargs
    assert kwargs["overrides"] == [] and kwargs["seed"] == 0 and kwargs["direction"] == "fwd"
    assert kwargs["out"] is None and kwargs["device"] is None and kwargs["random_encoder"] is False
    assert json.loads(result.stdout) == TRIAL
    kwargs["on_epoch"]("fwd", {"epoch": 0, "train_accuracy": 0.5, "valid_score": None})  # prints, never fails


def test_bench_lm_runs_the_package_benchmark():
    with mock.patch("ulmfit_multi.bench.bench_lm") as bench:
        result = invoke("bench", "lm", "--emb", "64", "--hidden", "128", "--steps", "5", "--impls", "nn_lstm")
    assert result.exit_code == 0, result.output
    assert bench.call_args.kwargs == {"vocab": 8000, "emb": 64, "hidden": 128, "layers": 3, "bptt": 70, "bs": 32,
                                      "steps": 5, "device": "cpu", "warmup": 3, "threads": 2, "impls": ("nn_lstm",),
                                      "precisions": ("cuda-bf16",)}
    with mock.patch("ulmfit_multi.bench.bench_lm") as bench:
        assert invoke("bench", "lm", "--precision", "fp32,bf16").exit_code == 0
    assert bench.call_args.kwargs["precisions"] == ("fp32", "bf16")
    bad = invoke("bench", "lm", "--impls", "fastai")
    assert bad.exit_code == 2 and "unknown implementation" in bad.output
    bad = invoke("bench", "lm", "--precision", "fp32,fp16")
    assert bad.exit_code == 2 and "unknown precision(s) fp16" in bad.output


def test_a_run_without_a_table_ends_with_its_notes(tmp_path, no_mirror_env):
    store = tmp_path / "store"
    fetch = _entry("fetch", "ran", store / "fetch" / "f1")
    (store / "fetch" / "f1" / "fetched.json").write_text(json.dumps(
        {"mr/x/test.csv": {"path": None, "role": "x:test"}}), encoding="utf-8")
    run = _run_folder(tmp_path / "runs" / "mr-smoke", [fetch])
    result_obj = RunResult(run, [StageResult("fetch", "ran", "ab" * 32, store / "fetch" / "f1")])
    with mock.patch("ulmfit_multi.pipeline.run_recipe", return_value=result_obj):
        result = invoke("recipe", "mr", "--until", "fetch")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "note: x: test split not available (mr/x/test.csv)"


def test_status_of_a_recipe_takes_the_mirror_whose_files_it_fingerprints(tmp_path, no_mirror_env):
    with mock.patch("ulmfit_multi.inputs.InputFiles.identities", return_value={}) as ids:
        result = invoke("status", "mr", "--mirror", str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"))
    assert result.exit_code == 0, result.output
    ids.assert_called_once()
    rows = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    assert [r[0] for r in rows] == STAGE_NAMES and {r[1] for r in rows} == {"missing"}
