"""Peek at a run's classifier results before its `classifier` stage has finished.

Usage:
    python bench/partial_results.py work/runs/ta-cpu
    python bench/partial_results.py work/runs/ta-cpu --task fire2020-ta

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. This scores what has finished so far, the way the `evaluate` stage will
(`pipeline.seed_system_probas`: forward, backward, their ensemble, each also with valid-tuned offsets):
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
    from ulmfit_multi.evaluate import compute_metrics
    from ulmfit_multi.pipeline import _metric_fn, read_json, seed_system_probas
    from ulmfit_multi.tables import aggregate

    cfg = load_run_config(args.run)
    clf = classifier_output(args.run, cfg)
    print(f"classifier output: {clf}\n")
    print("| task | system | seeds finished | test metric, mean ± sd | per seed |")
    print("|---|---|---|---|---|")
    for t in cfg.tasks:
        tdir = args.run / "04-encode" / "tasks" / t.name
        if (args.task and t.name not in args.task) or not (tdir / "test").exists() or not (clf / t.name).exists():
            continue
        meta = read_json(tdir / "task.json")
        metric, n_classes = meta["metric"], len(meta["classes"])
        y = np.load(tdir / "test" / "labels.npy")
        records = []  # as the evaluate stage writes them, so the results tables' `aggregate` gives mean and sd
        for seed in cfg.evaluate.seeds:
            probas, _ = seed_system_probas(clf / t.name, tdir, seed, cfg.pretrain.directions,
                                           calibrate=cfg.classifier.calibrate, score=_metric_fn(metric, n_classes))
            records += [{"task": t.name, "system": f"ULMFiT {system}", "seed": seed,
                         "metrics": compute_metrics(y, proba.argmax(1), n_classes)} for system, proba in probas.items()]
        for row in aggregate(records):
            per_seed = ", ".join(f"{r['seed']}: {100 * r['metrics'][metric]:.2f}" for r in records
                                 if r["system"] == row["system"])
            print(f"| {t.name} | {row['system']} | {row['n_seeds']} of {len(cfg.evaluate.seeds)} | "
                  f"{metric} {100 * row['mean'][metric]:.2f} ± {100 * row['std'][metric]:.2f} | {per_seed} |")


if __name__ == "__main__":
    main()
