"""bench/classifier_trial.py on the tiny recipe of test_pipeline: one classifier from a finished run's LM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ulmfit_multi.pipeline import run_recipe

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "classifier_trial.py"


def trial(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), "tiny-sent", *args],
                          capture_output=True, text=True, timeout=300)


def test_classifier_trial_prints_one_result_and_leaves_the_run_alone(tiny_setup: dict[str, Path]) -> None:  # noqa: F811
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="finetune_lm")
    before = sorted(p.relative_to(tiny_setup["work"]) for p in tiny_setup["work"].rglob("*"))
    done = trial(result.run_dir, "--set", "epochs=2", "--set", "max_batches_per_epoch=3", "--set", "stage_lrs=[0.02]",
                 "--set", "drop_mult=0.1", "--direction", "bwd")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["direction"] == "bwd" and row["set"] == {"epochs": 2, "max_batches_per_epoch": 3, "stage_lrs": [0.02],
                                                        "drop_mult": 0.1}
    assert len(row["epochs"]) == 2 and row["kept_epoch"] in (0, 1)
    assert 0.0 <= row["valid"] <= 1.0 and 0.0 <= row["test"] <= 1.0
    assert sorted(p.relative_to(tiny_setup["work"]) for p in tiny_setup["work"].rglob("*")) == before

    bad = trial(result.run_dir, "--set", "epochs")
    assert bad.returncode != 0 and "expected key=value" in bad.stderr
