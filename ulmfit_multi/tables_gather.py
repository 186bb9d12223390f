"""Gather the results of finished runs into one table (the `ulmfit-multi table` command)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .atomic import read_json
from .errors import StageError


def read_run_folder(run: Path) -> tuple[dict, dict]:
    """A run folder's resolved config (TOML data) and the environment its `run.json` records."""
    if not (run / "config.resolved.toml").exists():
        raise StageError(f"{run}: not a run folder (no config.resolved.toml)")
    cfg = tomllib.loads((run / "config.resolved.toml").read_text(encoding="utf-8"))
    env = read_json(run / "run.json").get("environment", {}) if (run / "run.json").exists() else {}
    return cfg, env


def stage_records(run: Path, stage: str) -> list[dict] | None:
    """The result records a finished stage (`evaluate`, `baselines`) of a run wrote; None when it has not."""
    from .pipeline import read_records

    found = _find_stage(run, stage)
    return read_records(found / "records.jsonl") if found is not None and (found / "records.jsonl").exists() else None


def _find_stage(run_dir: Path, stage: str) -> Path | None:
    """The stage folder `NN-<stage>` of a run folder, if the run has one."""
    hits = sorted(run_dir.glob(f"[0-9][0-9]-{stage}"))
    return hits[0] if hits and hits[0].exists() else None


def _stage_dir(run_dir: Path, stage: str) -> Path:
    """The finished stage folder `NN-<stage>` of a run folder."""
    found = _find_stage(run_dir, stage)
    if found is None:
        raise StageError(f"{run_dir}: stage '{stage}' has not finished in this run; run the recipe first")
    return found


def gather_runs(runs: list[Path], out: Path, *, title: str = "ULMFiT results") -> dict[str, Path]:
    """Read evaluate + baselines records and references from each run folder; write MD/CSV/JSON/LaTeX.

    A run with only its baselines finished contributes those rows."""
    from .stages import environment
    from .tables import write_tables

    records: list[dict] = []
    references: list[dict] = []
    metric_by_task: dict[str, str] = {}
    presets, hardware, commits = [], [], []
    unavailable: dict[str, str] = {}
    for run in runs:
        run = Path(run)
        cfg, run_env = read_run_folder(run)
        presets.append(f"{cfg['recipe']['name']}:{cfg['preset']}")
        found = [r for r in (stage_records(run, s) for s in ("evaluate", "baselines")) if r is not None]
        if not found:
            raise StageError(f"{run}: neither 'evaluate' nor 'baselines' has finished in this run; run the recipe first")
        for stage_recs in found:
            records += stage_recs
        hardware.append(f"{run_env.get('cuda') or 'CPU'}, {run_env.get('cpu_count', '?')} cores")
        commits.append(f"ulmfit_multi {run_env.get('ulmfit_multi', '?')} ({run_env.get('git_commit') or 'no git'})")
        unavailable.update(_unavailable_tasks(run, cfg))
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
                        unavailable=unavailable)


def _unavailable_tasks(run: Path, cfg: dict) -> dict[str, str]:
    """Tasks whose split files the run's fetch stage could not get: {task: the missing files}."""
    fetch = _find_stage(run, "fetch")
    if fetch is None or not (fetch / "_stage.json").exists():
        return {}
    summary = read_json(fetch / "_stage.json").get("summary", {})
    missing = set(summary.get("unavailable", []))
    out = {}
    for task in cfg.get("tasks", []):
        gone = [f"{role}: {path} unavailable" for role, path in task.get("splits", {}).items() if path in missing]
        if gone:
            out[task["name"]] = "; ".join(gone)
    return out
