"""Gather the results of finished runs into one table (the `ulmfit-multi table` command)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import StageError


def _stage_dir(run_dir: Path, stage: str) -> Path:
    hits = sorted(run_dir.glob(f"[0-9][0-9]-{stage}"))
    if not hits or not hits[0].exists():
        raise StageError(f"{run_dir}: stage '{stage}' has not finished in this run; run the recipe first")
    return hits[0]


def gather_runs(runs: list[Path], out: Path, *, title: str = "ULMFiT results") -> dict[str, Path]:
    """Read evaluate + baselines records and references from each run folder; write MD/CSV/JSON/LaTeX."""
    from .pipeline import read_records
    from .stages import environment
    from .tables import write_tables

    records: list[dict] = []
    references: list[dict] = []
    metric_by_task: dict[str, str] = {}
    presets = []
    for run in runs:
        run = Path(run)
        cfg = tomllib.loads((run / "config.resolved.toml").read_text(encoding="utf-8"))
        presets.append(f"{cfg['recipe']['name']}:{cfg['preset']}")
        for stage in ("evaluate", "baselines"):
            records += read_records(_stage_dir(run, stage) / "records.jsonl")
        references += [{k: r[k] for k in ("task", "system", "metric", "value", "cite")} for r in cfg.get("reference", [])]
        metric_by_task.update({t["name"]: t["metric"] for t in cfg.get("tasks", [])})
    env = environment()
    header = {
        "command": "ulmfit-multi table " + " ".join(str(r) for r in runs),
        "runs": ", ".join(presets),
        "code version": f"ulmfit_multi {env['ulmfit_multi']} ({env['git_commit'] or 'no git'})",
        "hardware": f"{env.get('cuda') or 'CPU'}, {env['cpu_count']} cores",
    }
    return write_tables(records, references, out, title=title, metric_by_task=metric_by_task, header=header)
