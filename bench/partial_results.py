"""Peek at a run's classifier results before its `classifier` stage has finished.

Usage:
    python bench/partial_results.py work/runs/ta-cpu
    python bench/partial_results.py work/runs/ta-cpu --task fire2020-ta

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. This scores what has finished so far, the way the `evaluate` stage will
(`pipeline.seed_system_probas`: forward, backward, their ensemble, each also with valid-tuned offsets; the
ensemble of all finished seeds; with `evaluate.fuse_with`, each seed's ensemble fused with those baselines):
test-split metric per system, mean and standard deviation over the seeds that have finished, in
percent. It reads the stage's finished output when there is one, else its `.partial` folder in the store
(found from the run's resolved config); it writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ulmfit_multi.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout


def classifier_output(run: Path, cfg: Config) -> Path:
    """The run's classifier stage folder: finished (`08-classifier`) or in progress (`<fp>.partial`)."""
    from ulmfit_multi.paths import Paths
    from ulmfit_multi.pipeline import STAGES
    from ulmfit_multi.stages import compute_fingerprints, store_dir

    done = next(iter(sorted(run.glob("[0-9][0-9]-classifier"))), None)
    if done is not None:
        return done
    fp = compute_fingerprints(STAGES, cfg)["classifier"]
    partial = store_dir(Paths.resolve(work_dir=run.resolve().parents[1]), "classifier", fp)
    partial = partial.with_name(partial.name + ".partial")
    if not partial.exists():
        raise SystemExit(f"{run}: no classifier stage output, finished or partial (looked for {partial})")
    return partial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder (work/runs/<recipe>-<preset>)")
    ap.add_argument("--task", action="append", default=[], help="only these tasks (default: all)")
    args = ap.parse_args()

    import numpy as np

    from ulmfit_multi.config import load_run_config
    from ulmfit_multi.errors import StageError
    from ulmfit_multi.evaluate import compute_metrics
    from ulmfit_multi.pipeline import _metric_fn, read_json, task_system_probas
    from ulmfit_multi.tables import aggregate

    cfg = load_run_config(args.run)
    clf = classifier_output(args.run, cfg)
    baselines_dir = next(iter(sorted(args.run.glob("[0-9][0-9]-baselines"))), args.run / "05-baselines")
    print(f"classifier output: {clf}\n")
    print("| task | system | seeds finished | test metric, mean ± sd | per seed |")
    print("|---|---|---|---|---|")
    notes = []
    for t in cfg.tasks:
        tdir = args.run / "04-encode" / "tasks" / t.name
        if (args.task and t.name not in args.task) or not (tdir / "test").exists() or not (clf / t.name).exists():
            continue
        meta = read_json(tdir / "task.json")
        metric, n_classes = meta["metric"], len(meta["classes"])
        score = _metric_fn(metric, n_classes)
        y = np.load(tdir / "test" / "labels.npy")
        try:
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score,
                                               fuse_with=cfg.evaluate.fuse_with)
        except StageError as e:  # a baselines stage from before it saved probabilities: the rest still shows
            notes.append(f"no fusion rows: {e}")
            by_seed, _, _ = task_system_probas(cfg, clf / t.name, tdir, baselines_dir, score=score, fuse_with=())
        # records as the evaluate stage writes them, for the tables' `aggregate`
        records = [{"task": t.name, "system": f"ULMFiT {system}", "seed": "pooled" if seed is None else seed,
                    "metrics": compute_metrics(y, proba.argmax(1), n_classes)}
                   for seed, probas in by_seed.items() for system, proba in probas.items()]
        for row in aggregate(records):
            per_seed = ", ".join(f"{r['seed']}: {100 * r['metrics'][metric]:.2f}" for r in records
                                       if r["system"] == row["system"])
            print(f"| {t.name} | {row['system']} | {row['n_seeds']} of {len(cfg.evaluate.seeds)} | "
                  f"{metric} {100 * row['mean'][metric]:.2f} ± {100 * row['std'][metric]:.2f} | {per_seed} |")
    for note in dict.fromkeys(notes):
        print(f"\n{note}")


if __name__ == "__main__":
    main()
