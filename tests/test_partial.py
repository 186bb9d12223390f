"""Partial results on the tiny recipe: the evaluate stage's numbers for a finished run, and the classifiers
finished so far for a run whose classifier stage is still running (`partial_table`, `ulmfit-multi status RUN`,
`compare_runs`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmfit_multi.cli import app
from ulmfit_multi.compare import compare_runs
from ulmfit_multi.errors import StageError
from ulmfit_multi.partial import partial_records, partial_table
from ulmfit_multi.pipeline import run_recipe
from ulmfit_multi.runfolder import RunFolder

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)


def rows_of(text: str) -> dict[str, list[str]]:
    """system -> the table row's cells (seeds finished, mean ± sd, per seed)."""
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| tiny-sent")]
    return {cells[1].strip(): [c.strip() for c in cells[2:]] for cells in rows}


def status(run: Path) -> str:
    done = CliRunner().invoke(app, ["status", str(run)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def simulate_running_classifier(run: Path, drop: str | None = None) -> Path:
    """Make the run look as if its classifier stage were still running: run.json says "running" with the path
    of the store folder renamed to `<fp>.partial`, evaluate and table never reached (entries and links gone);
    `drop` (e.g. "tiny-sent/bwd/seed1") is a classifier not finished yet. Returns the .partial folder."""
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    entry = next(e for e in meta["stages"] if e["name"] == "classifier")
    store = Path(entry["path"])
    partial = store.with_name(store.name + ".partial")
    store.rename(partial)
    entry.update(status="running", path=str(partial), seconds=0.0)
    meta["stages"] = [e for e in meta["stages"] if e["name"] not in ("evaluate", "table")]
    (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    for link in run.iterdir():
        if link.name.split("-", 1)[-1] in ("classifier", "evaluate", "table"):
            os.unlink(link)
    if drop:
        shutil.rmtree(partial / drop)
    return partial


def test_partial_results_match_evaluate_and_read_a_running_stage(tiny_setup: dict[str, Path]) -> None:  # noqa: F811
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="evaluate",
                        overrides=["evaluate.seeds=[0, 1]", "classifier.calibrate=true",
                                   "evaluate.fuse_with=['tfidf-lr']"])
    run = result.run_dir
    records = RunFolder(run).records("evaluate")
    assert records
    partial, _, _ = partial_records(run)
    key = lambda r: (r["task"], r["system"], -1 if r["seed"] is None else r["seed"])  # noqa: E731
    assert sorted(partial, key=key) == sorted(records, key=key)  # a finished run: exactly the evaluate stage's

    rows = rows_of(partial_table(run))
    assert set(rows) == {r["system"] for r in records}
    assert {"ULMFiT ensemble + tfidf-lr", "ULMFiT ensemble of 2 seeds",
            "ULMFiT ensemble of 2 seeds + valid-tuned bias"} <= set(rows)
    for r in records:
        metric = rows[r["system"]][1].split()[0]  # "accuracy 61.01 ± 0.73"
        pooled = r["seed"] is None  # one ensemble of both seeds: a single record
        assert rows[r["system"]][0] == ("1 of 2" if pooled else "2 of 2")
        seed = "pooled" if pooled else r["seed"]
        assert f"{seed}: {100 * r['metrics'][metric]:.2f}" in rows[r["system"]][2]
    finished = status(run)
    assert "evaluate has not run" not in finished and not rows_of(finished)  # evaluate ran: stages only
    assert [line.split()[0] for line in finished.splitlines()] == [s.name for s in result.stages]

    # the same stage as if still running, one backward classifier not yet done
    partial_dir = simulate_running_classifier(run, drop="tiny-sent/bwd/seed1")
    out = status(run)
    assert "classifier   running" in out and str(partial_dir) in out and "evaluate has not run" in out
    rows = rows_of(out)
    assert rows == rows_of(partial_table(run))
    assert rows["ULMFiT fwd"][0] == "2 of 2"
    assert rows["ULMFiT bwd"][0] == "1 of 2" and rows["ULMFiT ensemble"][0] == "1 of 2"
    assert "1: " not in rows["ULMFiT ensemble"][2]
    assert "1: " not in rows["ULMFiT ensemble + tfidf-lr"][2]
    assert not any("seeds" in system for system in rows)  # one seed's ensemble left: nothing to pool
    bwd = next(r for r in records if r["system"] == "ULMFiT bwd" and r["seed"] == 0)
    assert f"0: {100 * bwd['metrics']['accuracy']:.2f}" in rows["ULMFiT bwd"][2]

    # `ulmfit-multi compare` reads the same running stage: paired on the seeds finished
    compared = {r.system: r for r in compare_runs(run, run).rows}
    assert compared["ULMFiT fwd"].seeds == [0, 1] and compared["ULMFiT bwd"].seeds == [0]
    assert compared["ULMFiT bwd"].base == [bwd["metrics"][compared["ULMFiT bwd"].metric]]
    assert "partial: evaluate not run yet" in compare_runs(run, run).to_markdown()

    # a baselines stage from before it saved probabilities: no fusion rows, a note, the rest as before
    shutil.rmtree(RunFolder(run).stage_dir("baselines") / "probas")
    old = status(run)
    assert "no fusion rows" in old and "no saved probabilities" in old
    assert "ULMFiT ensemble + tfidf-lr" not in old and "| tiny-sent | ULMFiT ensemble |" in old

    # the stage started but nothing is on disk yet: the stages still show, with a note
    shutil.rmtree(partial_dir)
    with pytest.raises(StageError, match="no classifier stage output"):
        partial_records(run)
    gone = status(run)
    assert "classifier   running" in gone and "no partial results" in gone and "no classifier stage output" in gone
