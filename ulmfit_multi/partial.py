"""Score a run's classifiers before its `classifier` stage has finished.

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. `partial_records` scores what has finished so far the way the `evaluate` stage
will (`evaluate.task_system_probas`) and returns records in the evaluate stage's format. It reads the
stage's finished output when there is one, else its `.partial` folder in the store (where the run's
`run.json` says the stage is running); it writes nothing. `ulmfit-multi status RUN` and `ulmfit-multi compare`
use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import StageError
from .runfolder import RunFolder, make_record


def partial_records(run: str | Path, *, tasks: Sequence[str] = ()) -> tuple[list[dict], list[str], Path]:
    """Test records of the ULMFiT systems whose classifiers have finished, notes, and the folder read.

    Records are as the evaluate stage writes them (seed None: the pooled-seed ensemble). A baselines stage
    from before it saved probabilities gives no fusion rows and a note instead of an error.
    """
    import numpy as np

    from .atomic import read_json
    from .evaluate import compute_metrics, metric_fn, task_system_probas

    folder = RunFolder(run)
    cfg = folder.config()
    clf = folder.find_stage("classifier", partial=True)
    if clf is None:
        raise StageError(f"{folder.path}: no classifier stage output, finished or in progress")
    baselines_dir = folder.stage_dir("baselines")
    encode_dir = folder.stage_dir("encode")
    records: list[dict] = []
    notes: list[str] = []
    for t in cfg.tasks:
        tdir = encode_dir / "tasks" / t.name
        if (tasks and t.name not in tasks) or not (tdir / "test").exists() or not (clf / t.name).exists():
            continue
        meta = read_json(tdir / "task.json")
        n_classes = len(meta["classes"])
        score = metric_fn(meta["metric"], n_classes)
        y = np.load(tdir / "test" / "labels.npy")
        try:
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score,
                                               fuse_with=cfg.evaluate.fuse_with)
        except StageError as e:  # a baselines stage from before it saved probabilities: the rest still shows
            notes.append(f"no fusion rows: {e}")
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score, fuse_with=())
        records += [make_record(t.name, f"ULMFiT {system}", seed, compute_metrics(y, proba.argmax(1), n_classes),
                                len(y), preset=cfg.preset, note=t.note)
                    for seed, probas in by_seed.items() for system, proba in probas.items()]
    return records, list(dict.fromkeys(notes)), clf
