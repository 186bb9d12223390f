"""bench/partial_results.py on the tiny recipe: the evaluate stage's numbers, also from a stage still running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ulmfit_multi.compare import compare_runs
from ulmfit_multi.pipeline import run_recipe
from ulmfit_multi.runfolder import read_records

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "partial_results.py"


def peek(run_dir: Path) -> dict[str, list[str]]:
    """system -> the table row's cells (seeds finished, mean ± sd, per seed)."""
    done = subprocess.run([sys.executable, str(SCRIPT), str(run_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| tiny-sent")]
    return {cells[1].strip(): [c.strip() for c in cells[2:]] for cells in rows}


def test_partial_results_match_evaluate_and_read_a_running_stage(tiny_setup: dict[str, Path]) -> None:  # noqa: F811
    result = run_recipe(tiny_setup["recipe"], preset="base", mirror=tiny_setup["mirror"], work_dir=tiny_setup["work"],
                        data_dir=tiny_setup["data"], progress=False, device="cpu", until="evaluate",
                        overrides=["evaluate.seeds=[0, 1]", "classifier.calibrate=true",
                                   "evaluate.fuse_with=['tfidf-lr']"])
    run = result.run_dir
    rows = peek(run)
    records = read_records(next(run.glob("*-evaluate")) / "records.jsonl")
    assert set(rows) == {r["system"] for r in records}
    assert {"ULMFiT ensemble + tfidf-lr", "ULMFiT ensemble of 2 seeds",
            "ULMFiT ensemble of 2 seeds + valid-tuned bias"} <= set(rows)
    for r in records:
        metric = rows[r["system"]][1].split()[0]  # "accuracy 61.01 ± 0.73"
        pooled = r["seed"] is None  # one ensemble of both seeds: a single record
        assert rows[r["system"]][0] == ("1 of 2" if pooled else "2 of 2")
        seed = "pooled" if pooled else r["seed"]
        assert f"{seed}: {100 * r['metrics'][metric]:.2f}" in rows[r["system"]][2]

    # the same stage as if still running: only its .partial folder, one backward classifier not yet done
    link = next(run.glob("*-classifier"))
    store = link.resolve()
    os.unlink(link)
    partial = store.with_name(store.name + ".partial")
    store.rename(partial)
    shutil.rmtree(partial / "tiny-sent" / "bwd" / "seed1")
    rows = peek(run)
    assert rows["ULMFiT fwd"][0] == "2 of 2"
    assert rows["ULMFiT bwd"][0] == "1 of 2" and rows["ULMFiT ensemble"][0] == "1 of 2"
    assert "1: " not in rows["ULMFiT ensemble"][2]
    assert "1: " not in rows["ULMFiT ensemble + tfidf-lr"][2]
    assert not any("seeds" in system for system in rows)  # one seed's ensemble left: nothing to pool
    # `ulmfit-multi compare` reads the same running stage when the evaluate stage has not run: paired on the seeds finished
    os.unlink(next(run.glob("*-evaluate")))
    compared = {r.system: r for r in compare_runs(run, run).rows}
    assert compared["ULMFiT fwd"].seeds == [0, 1] and compared["ULMFiT bwd"].seeds == [0]
    assert compared["ULMFiT bwd"].base == [r["metrics"][compared["ULMFiT bwd"].metric] for r in records
                                           if r["system"] == "ULMFiT bwd" and r["seed"] == 0]
    assert "partial: evaluate not run yet" in compare_runs(run, run).to_markdown()

    # a baselines stage from before it saved probabilities: no fusion rows, a note, the rest as before
    shutil.rmtree(next(run.glob("*-baselines")).resolve() / "probas")
    old = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True, timeout=300)
    assert old.returncode == 0 and "no fusion rows" in old.stdout and "no saved probabilities" in old.stdout
    assert "ULMFiT ensemble + tfidf-lr" not in old.stdout and "| tiny-sent | ULMFiT ensemble |" in old.stdout

    shutil.rmtree(partial)
    gone = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True, timeout=300)
    assert gone.returncode != 0 and "no classifier stage output" in gone.stderr
