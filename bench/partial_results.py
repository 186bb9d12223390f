"""Peek at a run's classifier results before its `classifier` stage has finished.

Usage:
    python bench/partial_results.py work/runs/ta-cpu
    python bench/partial_results.py work/runs/ta-cpu --task fire2020-ta

The classifier stage of a big run takes hours (3 seeds x 2 directions x each task) and the `evaluate` stage
only runs after all of it. This prints what has finished so far, scored the way the `evaluate` stage will
(`ulmfit_multi.partial.partial_records`: forward, backward, their ensemble, each also with valid-tuned
offsets; the ensemble of all finished seeds; with `evaluate.fuse_with`, each seed's ensemble fused with those
baselines): test-split metric per system, mean and standard deviation over the seeds that have finished, in
percent. It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder (work/runs/<recipe>-<preset>)")
    ap.add_argument("--task", action="append", default=[], help="only these tasks (default: all)")
    args = ap.parse_args()

    from ulmfit_multi.config import load_run_config
    from ulmfit_multi.errors import StageError
    from ulmfit_multi.partial import partial_records
    from ulmfit_multi.tables import aggregate

    cfg = load_run_config(args.run)
    try:
        records, notes, clf = partial_records(args.run, tasks=args.task)
    except StageError as e:
        raise SystemExit(str(e)) from None
    metric_by_task = {t.name: t.metric for t in cfg.tasks}
    print(f"classifier output: {clf}\n")
    print("| task | system | seeds finished | test metric, mean ± sd | per seed |")
    print("|---|---|---|---|---|")
    for row in aggregate(records):
        metric = metric_by_task[row["task"]]
        per_seed = ", ".join(f"{'pooled' if r['seed'] is None else r['seed']}: {100 * r['metrics'][metric]:.2f}"
                             for r in records if r["task"] == row["task"] and r["system"] == row["system"])
        print(f"| {row['task']} | {row['system']} | {row['n_seeds']} of {len(cfg.evaluate.seeds)} | "
              f"{metric} {100 * row['mean'][metric]:.2f} ± {100 * row['std'][metric]:.2f} | {per_seed} |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
