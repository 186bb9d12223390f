"""Gather the results of finished runs into one table (the `ulmfit-multi table` command)."""

from __future__ import annotations

from pathlib import Path

from .errors import StageError
from .runfolder import RunFolder


def gather_runs(runs: list[Path], out: Path, *, title: str = "ULMFiT results") -> dict[str, Path]:
    """Read evaluate + baselines records and references from each run folder; write MD/CSV/JSON/LaTeX.

    A run with only its baselines finished contributes those rows."""
    from .notes import notes_of_run
    from .envinfo import environment
    from .tables import write_tables

    records: list[dict] = []
    references: list[dict] = []
    metric_by_task: dict[str, str] = {}
    presets, hardware, commits = [], [], []
    unavailable: dict[str, str] = {}
    notes: list[str] = []
    for path in runs:
        run = RunFolder(path)
        cfg, run_env = run.config_data(), run.environment()
        presets.append(f"{cfg['recipe']['name']}:{cfg['preset']}")
        found = [r for r in (run.records(s) for s in ("evaluate", "baselines")) if r is not None]
        if not found:
            raise StageError(f"{run.path}: neither 'evaluate' nor 'baselines' has finished in this run; run the recipe first")
        for stage_recs in found:
            records += stage_recs
        hardware.append(f"{run_env.get('cuda') or 'CPU'}, {run_env.get('cpu_count', '?')} cores")
        commits.append(f"ulmfit_multi {run_env.get('ulmfit_multi', '?')} ({run_env.get('git_commit') or 'no git'})")
        gone = _unavailable_tasks(run, cfg)
        unavailable.update(gone)
        notes += [f"{presets[-1]}: {n}" for n in notes_of_run(run.path, except_tasks=set(gone))]
        references += [{k: r[k] for k in ("task", "system", "metric", "value", "cite")} for r in cfg.get("reference", [])]
        metric_by_task.update({t["name"]: t["metric"] for t in cfg.get("tasks", [])})
    env = environment()
    header = {
        "command": "ulmfit-multi table " + " ".join(str(r) for r in runs),
        "runs": ", ".join(presets),
        "code version (of the runs)": ", ".join(dict.fromkeys(commits)),
        "gathered by": f"ulmfit_multi {env['ulmfit_multi']} ({env['git_commit'] or 'no git'})",
        "hardware (of the runs)": ", ".join(dict.fromkeys(hardware)),
    }
    unavailable = {t: why for t, why in unavailable.items() if not any(r["task"] == t for r in records)}
    return write_tables(records, references, out, title=title, metric_by_task=metric_by_task, header=header,
                        unavailable=unavailable, run_notes=list(dict.fromkeys(notes)))


def _unavailable_tasks(run: RunFolder, cfg: dict) -> dict[str, str]:
    """Tasks whose split files the run's fetch stage could not get: {task: the missing files}."""
    missing = set(run.stage_summary("fetch").get("unavailable", []))
    out = {}
    for task in cfg.get("tasks", []):
        gone = [f"{role}: {path} unavailable" for role, path in task.get("splits", {}).items() if path in missing]
        if gone:
            out[task["name"]] = "; ".join(gone)
    return out
