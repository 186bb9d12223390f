"""Score a run's classifiers before its `classifier` stage has finished.

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. `partial_records` scores what has finished so far the way the `evaluate` stage
will (`pipeline.task_system_probas`) and returns records in the evaluate stage's format. It reads the
stage's finished output when there is one, else its `.partial` folder in the store (found from the run's
resolved config); it writes nothing. `bench/partial_results.py` and `ulmfit-multi compare` use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .config import Config, load_run_config
from .errors import StageError


def classifier_output(run: Path, cfg: Config) -> Path:
    """The run's classifier stage folder: finished (`NN-classifier`) or in progress (`<fp>.partial`)."""
    from .paths import Paths
    from .pipeline import STAGES
    from .stages import compute_fingerprints, store_dir

    done = next(iter(sorted(run.glob("[0-9][0-9]-classifier"))), None)
    if done is not None:
        return done
    fp = compute_fingerprints(STAGES, cfg)["classifier"]
    partial = store_dir(Paths.resolve(work_dir=run.resolve().parents[1]), "classifier", fp)
    partial = partial.with_name(partial.name + ".partial")
    if not partial.exists():
        raise StageError(f"{run}: no classifier stage output, finished or partial (looked for {partial})")
    return partial


def partial_records(run: str | Path, *, tasks: Sequence[str] = ()) -> tuple[list[dict], list[str], Path]:
    """Test records of the ULMFiT systems whose classifiers have finished, notes, and the folder read.

    Records are as the evaluate stage writes them (seed None: the pooled-seed ensemble). A baselines stage
    from before it saved probabilities gives no fusion rows and a note instead of an error.
    """
    import numpy as np

    from .atomic import read_json
    from .evaluate import compute_metrics
    from .pipeline import _metric_fn, task_system_probas

    run = Path(run)
    cfg = load_run_config(run)
    clf = classifier_output(run, cfg)
    baselines_dir = next(iter(sorted(run.glob("[0-9][0-9]-baselines"))), run / "05-baselines")
    records: list[dict] = []
    notes: list[str] = []
    for t in cfg.tasks:
        tdir = run / "04-encode" / "tasks" / t.name
        if (tasks and t.name not in tasks) or not (tdir / "test").exists() or not (clf / t.name).exists():
            continue
        meta = read_json(tdir / "task.json")
        n_classes = len(meta["classes"])
        score = _metric_fn(meta["metric"], n_classes)
        y = np.load(tdir / "test" / "labels.npy")
        try:
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score,
                                               fuse_with=cfg.evaluate.fuse_with)
        except StageError as e:  # a baselines stage from before it saved probabilities: the rest still shows
            notes.append(f"no fusion rows: {e}")
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score, fuse_with=())
        records += [{"task": t.name, "system": f"ULMFiT {system}", "seed": seed, "split": "test", "n": len(y),
                     "metrics": compute_metrics(y, proba.argmax(1), n_classes)}
                    for seed, probas in by_seed.items() for system, proba in probas.items()]
    return records, list(dict.fromkeys(notes)), clf
