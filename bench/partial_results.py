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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout


def classifier_output(run: Path) -> Path:
    """The run's classifier stage folder: finished (`08-classifier`) or in progress (`<fp>.partial`)."""
    from ulmfit_multi.config import load_run_config
    from ulmfit_multi.paths import Paths
    from ulmfit_multi.pipeline import STAGES
    from ulmfit_multi.stages import compute_fingerprints, store_dir

    done = next(iter(sorted(run.glob("[0-9][0-9]-classifier"))), None)
    if done is not None:
        return done
    cfg = load_run_config(run)
    fp = compute_fingerprints(STAGES, cfg)["classifier"]
    partial = store_dir(Paths(data_dir=Path("."), mirror=None, work_dir=run.resolve().parents[1]), "classifier", fp)
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

    cfg = load_run_config(args.run)
    clf = classifier_output(args.run)
    print(f"classifier output: {clf}\n")
    print("| task | system | seeds finished | test metric, mean ± sd | per seed |")
    print("|---|---|---|---|---|")
    for t in cfg.tasks:
        tdir = args.run / "04-encode" / "tasks" / t.name
        if (args.task and t.name not in args.task) or not (tdir / "test").exists() or not (clf / t.name).exists():
            continue
        meta = read_json(tdir / "task.json")
        n_classes = len(meta["classes"])
        y = np.load(tdir / "test" / "labels.npy")
        calibrate = cfg.classifier.calibrate and (tdir / "valid").exists()
        scores: dict[str, dict[int, float]] = {}
        for seed in cfg.evaluate.seeds:
            probas, _ = seed_system_probas(clf / t.name, tdir, seed, cfg.pretrain.directions, calibrate=calibrate,
                                           score=_metric_fn(meta["metric"], n_classes))
            for system, proba in probas.items():
                scores.setdefault(system, {})[seed] = compute_metrics(y, proba.argmax(1), n_classes)[meta["metric"]]
        for system, by_seed in scores.items():
            v = 100 * np.array(list(by_seed.values()))
            sd = v.std(ddof=1) if len(v) > 1 else 0.0  # sample sd, as the results tables
            print(f"| {t.name} | ULMFiT {system} | {len(v)} of {len(cfg.evaluate.seeds)} | "
                  f"{meta['metric']} {v.mean():.2f} ± {sd:.2f} | "
                  + ", ".join(f"{s}: {x:.2f}" for s, x in zip(by_seed, v)) + " |")


if __name__ == "__main__":
    main()
