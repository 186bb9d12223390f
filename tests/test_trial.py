"""`ulmfit-multi trial` / `trial.classifier_trial` on the tiny recipe of test_pipeline: classifiers trained from a
finished run's fine-tuned LMs with classifier settings overridden, the run folder left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmfit_multi.cli import app
from ulmfit_multi.config import load_recipe, to_toml
from ulmfit_multi.errors import RecipeError, StageError
from ulmfit_multi.pipeline import run_recipe
from ulmfit_multi.runfolder import RunFolder
from ulmfit_multi.trial import classifier_trial, format_trial, trial_config

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)

SETTINGS = ["classifier.epochs=2", "classifier.max_batches_per_epoch=3", "classifier.stage_lrs=[0.02]",
            "classifier.drop_mult=0.1"]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def config_only_run(tiny_setup: dict[str, Path], tmp_path: Path) -> Path:  # noqa: F811
    """A run folder with only its resolved config (no stage has run): enough for argument checks."""
    run = tmp_path / "runs" / "tiny-base"
    run.mkdir(parents=True)
    (run / "config.resolved.toml").write_text(to_toml(load_recipe(tiny_setup["recipe"], "base").to_dict()),
                                              encoding="utf-8")
    return run


def test_trial_trains_both_directions_and_their_ensemble_and_leaves_the_run_alone(
        tiny_setup: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="finetune_lm")
    before = _tree(tiny_setup["work"])
    epochs: list[tuple[str, int]] = []
    trial = classifier_trial(result.run_dir, "tiny-sent", overrides=SETTINGS, direction="both", device="cpu",
                             on_epoch=lambda d, rec: epochs.append((d, rec["epoch"])))
    assert set(trial["systems"]) == {"fwd", "bwd", "ensemble"}
    assert trial["metric"] == "accuracy" and trial["set"] == SETTINGS and trial["out"] is None
    assert epochs == [("fwd", 0), ("fwd", 1), ("bwd", 0), ("bwd", 1)]
    for d in ("fwd", "bwd"):
        s = trial["systems"][d]
        assert len(s["epochs"]) == 2 and s["kept_epoch"] in (0, 1)
        assert s["valid"] == s["epochs"][s["kept_epoch"]][1]
    for s in trial["systems"].values():
        assert 0.0 <= s["valid"] <= 1.0 and 0.0 <= s["test"] <= 1.0
    table = format_trial(trial)
    assert "| ensemble |" in table and "classifier.epochs=2" in table
    assert _tree(tiny_setup["work"]) == before

    # the command: one direction, kept in --out, one JSON line
    out = tmp_path / "trials" / "one"
    done = CliRunner().invoke(app, ["trial", str(result.run_dir), "tiny-sent", "--direction", "bwd", "--seed", "1",
                                    "--out", str(out), "--device", "cpu", "--json", "-q",
                                    *[arg for s in SETTINGS[:2] for arg in ("--set", s)]], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(row["systems"]) == {"bwd"} and row["seed"] == 1 and len(row["systems"]["bwd"]["epochs"]) == 2
    assert (out / "tiny-sent" / "bwd" / "seed1" / "model.pt").exists()
    assert json.loads((out / "trial.json").read_text(encoding="utf-8")) == row
    assert _tree(tiny_setup["work"]) == before

    again = CliRunner().invoke(app, ["trial", str(result.run_dir), "tiny-sent", "--direction", "bwd", "--seed", "1",
                                     "--out", str(out)])
    assert again.exit_code == 2 and "already holds a trial" in again.output


def test_trial_settings_are_validated_like_recipe_overrides(config_only_run: Path) -> None:
    run = RunFolder(config_only_run)
    cfg = trial_config(run, ["classifier.epochs=7", "classifier.stage_lrs=[0.01, 0.005]"])
    assert cfg.classifier.epochs == 7 and cfg.classifier.stage_lrs == [0.01, 0.005]
    with pytest.raises(RecipeError, match=r"unknown key 'classifier.epoch' \(did you mean 'epochs'\?\)"):
        trial_config(run, ["classifier.epoch=7"])
    with pytest.raises(RecipeError, match="'classifier.epochs' must be an integer"):
        trial_config(run, ["classifier.epochs=seven"])
    with pytest.raises(RecipeError, match=r"classifier settings only.*did you mean 'classifier.epochs'"):
        trial_config(run, ["epochs=7"])
    with pytest.raises(RecipeError, match="classifier settings only"):
        trial_config(run, ["pretrain.epochs=7"])
    with pytest.raises(RecipeError, match="expected key=value"):
        trial_config(run, ["classifier.epochs"])
    with pytest.raises(RecipeError, match="positive learning rates"):
        trial_config(run, ["classifier.stage_lrs=[0.01, 0]"])
    assert "config.resolved.toml (with --set)" in str(pytest.raises(RecipeError, trial_config, run,
                                                                    ["classifier.lr='x'"]).value)


def test_trial_refuses_bad_arguments_before_training(config_only_run: Path) -> None:
    with pytest.raises(RecipeError, match="--direction 'sideways'"):
        classifier_trial(config_only_run, "tiny-sent", direction="sideways")
    with pytest.raises(StageError, match="inside the run folder"):
        classifier_trial(config_only_run, "tiny-sent", out=config_only_run / "trial")
    with pytest.raises(StageError, match="stage 'encode' has not finished"):
        classifier_trial(config_only_run, "tiny-sent")

    runner = CliRunner()
    bad = runner.invoke(app, ["trial", str(config_only_run), "tiny-sent", "--set", "classifier.epoch=2"])
    assert bad.exit_code == 2 and "did you mean 'epochs'" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["trial", str(config_only_run.parent), "tiny-sent"])
    assert bad.exit_code == 2 and "not a run folder" in bad.output
