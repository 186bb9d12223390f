"""Score a run's classifiers before its `classifier` stage has finished.

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. `partial_records` scores what has finished so far the way the `evaluate` stage
will (`evaluate.task_system_probas`) and returns records in the evaluate stage's format. It reads the
stage's finished output when there is one, else its `.partial` folder in the store (where the run's
`run.json` says the stage is running); it writes nothing. `partial_table` prints them as mean ± sd over the
seeds finished so far. `ulmfit-multi status RUN_FOLDER` and `ulmfit-multi compare` use them.
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


def partial_table(run: str | Path, *, tasks: Sequence[str] = ()) -> str:
    """The finished classifiers' test scores as a Markdown table: per task and system, the seeds finished,
    mean ± sd over them and each seed's score (percent, the task's metric), then any notes."""
    from .tables import aggregate

    records, notes, clf = partial_records(run, tasks=tasks)
    cfg = RunFolder(run).config()
    metric_by_task = {t.name: t.metric for t in cfg.tasks}
    lines = [f"classifier output: {clf}", "",
             "| task | system | seeds finished | test metric, mean ± sd | per seed |", "|---|---|---|---|---|"]
    for row in aggregate(records):
        metric = metric_by_task[row["task"]]
        per_seed = ", ".join(f"{'pooled' if r['seed'] is None else r['seed']}: {100 * r['metrics'][metric]:.2f}"
                             for r in records if r["task"] == row["task"] and r["system"] == row["system"])
        lines.append(f"| {row['task']} | {row['system']} | {row['n_seeds']} of {len(cfg.evaluate.seeds)} | "
                     f"{metric} {100 * row['mean'][metric]:.2f} ± {100 * row['std'][metric]:.2f} | {per_seed} |")
    if not records:
        lines.append("(no classifier has finished yet)")
    lines += [f"\n{note}" for note in notes]
    return "\n".join(lines) + "\n"
