"""Compare two runs seed by seed: what an ablation changed (the `ulmfit-multi compare` command).

An ablation is the same recipe run twice with one thing changed (`--set corpus.synthetic.enabled=false`).
The two runs often differ in seeds too (a costly ablation run with fewer seeds), so every system is compared
only on the seeds both runs scored, as paired differences (other - base) per seed. A run whose `evaluate`
stage has not run yet contributes the classifiers finished so far (`partial.partial_records`).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import StageError
from .tables import METRIC_SHORT
from .runfolder import RunFolder

# Keys that say where a run came from, not what it computed.
_NOT_CONFIG = {"source_file", "overrides"}
_ABSENT = object()  # a key one resolved config lacks


@dataclass
class Row:
    """One task and system scored in both runs, on the seeds they share (None: a seedless system)."""

    task: str
    system: str
    metric: str
    seeds: list[int | None]
    base: list[float]  # per seed, as fractions
    other: list[float]
    base_only_seeds: list[int | None] = field(default_factory=list)
    other_only_seeds: list[int | None] = field(default_factory=list)

    @property
    def diffs(self) -> list[float]:
        """other - base, per shared seed."""
        return [o - b for b, o in zip(self.base, self.other)]

    @property
    def mean_diff(self) -> float:
        """The mean paired difference."""
        return statistics.fmean(self.diffs)


@dataclass
class Comparison:
    """Two runs side by side: their config differences and the paired per-seed scores."""

    base: Path
    other: Path
    config_diff: list[tuple[str, Any, Any]]
    rows: list[Row]
    unmatched: list[str]  # "task / system: only in base" and the like
    base_about: str = ""  # recipe, preset, code version (and whether partial) of each run
    other_about: str = ""

    def to_table(self) -> dict[str, Any]:
        """The comparison as a simple table (columns, rows, header, notes): what `results-page` renders."""
        n_diff = len(self.config_diff)
        header = {"base": f"`{self.base}` ({self.base_about})", "other": f"`{self.other}` ({self.other_about})",
                  "config differences (base -> other)": f"{n_diff}, listed under the table" if n_diff else "none"}
        rows = []
        for r in self.rows:
            seeds = ", ".join("-" if s is None else str(s) for s in r.seeds)
            diff = f"{100 * r.mean_diff:+.2f}"
            if len(r.diffs) > 1:
                diff += f" ± {100 * statistics.stdev(r.diffs):.2f}"
            per_seed = ", ".join(f"{100 * d:+.2f}" for d in r.diffs) if len(r.diffs) > 1 else ""
            rows.append([f"{r.task} ({METRIC_SHORT.get(r.metric, r.metric)})", r.system, seeds, _pct(r.base),
                         _pct(r.other), diff, per_seed])
        notes = ["Test split, the task's metric in percent; base and other are means over the seeds compared; "
                 "other - base is the mean paired difference (± its sample std over seeds)."]
        skipped = sorted({s for r in self.rows for s in r.base_only_seeds + r.other_only_seeds if s is not None})
        if skipped:
            notes.append(f"Seeds scored in one run only, left out of the comparison: {', '.join(map(str, skipped))}.")
        notes += [f"Not in both runs: {u}" for u in self.unmatched]
        notes += [f"Config difference: `{key}`: {_show(a)} -> {_show(b)}" for key, a, b in self.config_diff]
        return {"title": f"{self.other.name} against {self.base.name}", "header": header,
                "columns": ["task", "system", "seeds compared", "base", "other", "other - base", "per seed"],
                "rows": rows, "notes": notes}

    def to_markdown(self) -> str:
        """A Markdown report: both runs, their config differences, and one row per task and system."""
        table = self.to_table()
        lines = [f"## {table['title']}", ""]
        lines += [f"- {key}: {value}" for key, value in table["header"].items()]
        lines += ["", "| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
        lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
        return "\n".join(lines + [""] + table["notes"]) + "\n"


def _show(value: Any, limit: int = 120) -> str:
    """A config value for the report; a long one (a whole `tasks` list) cut to `limit` characters."""
    if value is _ABSENT:
        return "(absent)"
    text = repr(value)
    return f"`{text if len(text) <= limit else text[:limit - 3] + '...'}`"


def _pct(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.2f}"


def _seeds(scores: dict[int | None, float]) -> str:
    return "seeds " + ", ".join("-" if s is None else str(s) for s in scores)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys (`corpus.synthetic.enabled`); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def config_differences(base: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, base value, other value) for every resolved-config key that differs, `runtime.*` left out."""
    a, b = flatten(base), flatten(other)
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in keys
            if k not in _NOT_CONFIG and not k.startswith("runtime.") and a.get(k, _ABSENT) != b.get(k, _ABSENT)]


def _read_run(run: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[int | None, float]], str]:
    """A run's resolved config, its test scores {(task, system): {seed: score}} and a one-line description."""
    folder = RunFolder(run)
    cfg, env = folder.config_data(), folder.environment()
    records = folder.records("evaluate")
    partial = ""
    if records is None:  # the classifiers finished so far, scored as the evaluate stage will
        from .partial import partial_records

        try:
            records, _, _ = partial_records(run)
        except StageError as e:
            raise StageError(f"{run}: stage 'evaluate' has not finished, and {str(e).removeprefix(f'{run}: ')}") from None
        partial = ", partial: evaluate not run yet, ULMFiT rows from the classifiers finished so far"
    metric_by_task = {t["name"]: t.get("metric", "accuracy") for t in cfg.get("tasks", [])}
    records += folder.records("baselines") or []
    scores: dict[tuple[str, str], dict[int | None, float]] = {}
    for rec in records:
        if rec.get("split", "test") != "test":
            continue
        metric = metric_by_task.get(rec["task"], "accuracy")
        if metric not in rec["metrics"]:
            raise StageError(f"{run}: a record of {rec['task']} / {rec['system']} has no {metric!r}")
        scores.setdefault((rec["task"], rec["system"]), {})[rec.get("seed")] = rec["metrics"][metric]
    commit = (env.get("git_commit") or "no git")[:7]
    described = f"{cfg.get('recipe', {}).get('name', '?')}, preset {cfg.get('preset', '?')}, code {commit}{partial}"
    return cfg, scores, described


def compare_runs(base: str | Path, other: str | Path) -> Comparison:
    """Pair two runs' test scores by task, system and seed, and list their config differences."""
    base, other = Path(base), Path(other)
    base_cfg, base_scores, base_desc = _read_run(base)
    other_cfg, other_scores, other_desc = _read_run(other)
    metric_by_task = {t["name"]: t.get("metric", "accuracy") for t in base_cfg.get("tasks", [])}
    rows, unmatched = [], []
    keys = list(base_scores) + [k for k in other_scores if k not in base_scores]
    tasks = list(dict.fromkeys(task for task, _ in keys))
    for key in sorted(keys, key=lambda k: tasks.index(k[0])):  # grouped by task, each run's system order kept
        task, system = key
        a, b = base_scores.get(key, {}), other_scores.get(key, {})
        shared = [s for s in a if s in b]
        if not shared:
            unmatched.append(f"{task} / {system}: " + ("only in other" if not a else "only in base" if not b else
                                                       f"no seed scored in both ({_seeds(a)} vs {_seeds(b)})"))
            continue
        rows.append(Row(task, system, metric_by_task.get(task, "accuracy"), shared,
                        [a[s] for s in shared], [b[s] for s in shared],
                        base_only_seeds=[s for s in a if s not in b], other_only_seeds=[s for s in b if s not in a]))
    return Comparison(base, other, config_differences(base_cfg, other_cfg), rows, unmatched,
                      base_about=base_desc, other_about=other_desc)


def write_comparison(comparison: Comparison, out: str | Path) -> Path:
    """Write the report (atomically: a temp name, then rename): a simple-table JSON for `results-page` when `out`
    ends in .json, Markdown otherwise."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        if out.suffix == ".json":
            f.write(json.dumps(comparison.to_table(), ensure_ascii=False, indent=2) + "\n")
        else:
            f.write(comparison.to_markdown())
    return out
