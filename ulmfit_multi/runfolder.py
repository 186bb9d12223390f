"""A run folder (`work/runs/<recipe>-<preset>[-<hash>]`) and the result records its stages write.

The stage engine writes `config.resolved.toml` and `run.json`; `run.json` names every stage the run has
reached, with its status and the store folder that holds its output. `RunFolder` finds a stage's output
by the stage's name through that record, so no other module knows how the engine names its links
(`NN-<stage>`) or in which order the stages come.

Result records (one JSON object per line in a stage's `records.jsonl`) are made, written and read here:
    {"task", "system", "seed", "split": "test", "metrics": {"accuracy", "weighted_f1", "macro_f1"}, "n",
     "preset", "note"}

Usage:
    run = RunFolder("work/runs/mr-smoke")
    run.stage_dir("encode") / "tasks"          # a finished stage's output
    run.records("evaluate")                    # its result records, or None before it has finished
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write, read_json
from .errors import StageError

if TYPE_CHECKING:
    from .config import Config

FINISHED = ("ran", "skipped")  # run.json statuses of a stage whose output is complete
RECORDS = "records.jsonl"


def make_record(task: str, system: str, seed: int | None, metrics: dict[str, float], n: int, *, preset: str,
                note: str = "") -> dict[str, Any]:
    """One test-split result record."""
    return {"task": task, "system": system, "seed": seed, "split": "test", "metrics": metrics, "n": n,
            "preset": preset, "note": note}


def write_records(path: Path, records: list[dict]) -> None:
    """Write records as JSON lines (atomically: a reader never sees half a file)."""
    with atomic_write(path) as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def read_records(path: Path) -> list[dict]:
    """Result records written by `write_records`."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class RunFolder:
    """One run folder: its resolved config, its environment and its stages' outputs, found by stage name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.resolved.toml").exists():
            raise StageError(f"{self.path}: not a run folder (no config.resolved.toml)")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def config(self) -> Config:
        """The resolved config the run was made with, validated."""
        from .config import load_run_config

        return load_run_config(self.path)

    def config_data(self) -> dict[str, Any]:
        """The resolved config as plain TOML data (readable even when this version rejects a key)."""
        return tomllib.loads((self.path / "config.resolved.toml").read_text(encoding="utf-8"))

    def run_json(self) -> dict[str, Any]:
        """What the stage engine recorded of the run ({} before any stage ran)."""
        f = self.path / "run.json"
        return read_json(f) if f.exists() else {}

    def environment(self) -> dict[str, Any]:
        """Code and library versions and hardware the run recorded."""
        return self.run_json().get("environment", {})

    def stages(self) -> list[dict[str, Any]]:
        """Every stage the run has reached, in order: run.json's entries (name, status, fingerprint, path,
        seconds), or for a folder written before run.json kept them, the engine's links (status "linked")."""
        entries = self.run_json().get("stages", [])
        if entries:
            return entries
        return [{"name": link.name.split("-", 1)[1], "status": "linked", "path": str(link.resolve()), "seconds": 0.0}
                for link in sorted(self.path.iterdir()) if link.is_symlink() and "-" in link.name]

    def stage_entry(self, stage: str) -> dict[str, Any] | None:
        """run.json's entry for `stage` (name, status, fingerprint, path, seconds), if the run reached it."""
        return next((s for s in self.run_json().get("stages", []) if s["name"] == stage), None)

    def find_stage(self, stage: str, *, partial: bool = False) -> Path | None:
        """The output folder of `stage` when it has finished (with `partial`, also one still running
        or failed: its `.partial` folder in the store); None otherwise."""
        entry = self.stage_entry(stage)
        if entry is not None:
            path = Path(entry["path"])
            if entry["status"] in FINISHED or partial:
                return path if path.exists() else None
            return None
        # run folders written before run.json kept every stage: the engine's link, whatever its number
        links = sorted(p for p in self.path.glob(f"*-{stage}") if p.name.split("-", 1)[1] == stage)
        return links[0].resolve() if links and links[0].exists() else None

    def stage_dir(self, stage: str) -> Path:
        """The finished output of `stage`; StageError when it has not finished."""
        found = self.find_stage(stage)
        if found is None:
            raise StageError(f"{self.path}: stage '{stage}' has not finished in this run; run the recipe first")
        return found

    def records(self, stage: str) -> list[dict] | None:
        """The result records a finished stage (`evaluate`, `baselines`) wrote; None when it has not."""
        found = self.find_stage(stage)
        return read_records(found / RECORDS) if found is not None and (found / RECORDS).exists() else None

    def stage_summary(self, stage: str) -> dict[str, Any]:
        """The summary a finished stage recorded in its `_stage.json` ({} when there is none)."""
        found = self.find_stage(stage)
        meta = found / "_stage.json" if found is not None else None
        return read_json(meta).get("summary", {}) if meta is not None and meta.exists() else {}


# ---------------------------------------------------------------- how a run was started (run.json "invocation")


def recorded_invocation(run_dir: Path | None) -> dict[str, Any] | None:
    """How the run was started, as run_recipe recorded it in run.json (None when it was not)."""
    try:
        return read_json(run_dir / "run.json").get("invocation") if run_dir is not None else None
    except (OSError, ValueError):
        return None


def override_items(overrides: list[str] | dict | None) -> list[str]:
    """--set items as given; a dict of overrides (Python API) as one `key.sub=VALUE` item per value."""
    if not isinstance(overrides, dict):
        return list(overrides or [])
    from .schema import to_toml

    def flat(node: dict, prefix: str) -> list[str]:
        items = []
        for key, value in node.items():
            if isinstance(value, dict):
                items += flat(value, f"{prefix}{key}.")
            else:
                items.append(f"{prefix}{key}={to_toml({'v': value}).split(' = ', 1)[1].strip()}")
        return items

    return flat(overrides, "")


def command_line(invocation: dict[str, Any]) -> str:
    """The `ulmfit-multi recipe` command that repeats a run, from run_recipe's record of how it was started."""
    parts = ["ulmfit-multi", "recipe", invocation["recipe"], "--preset", invocation["preset"]]
    for item in invocation.get("overrides") or []:
        parts += ["--set", item]
    for flag, key in (("--mirror", "mirror"), ("--data-dir", "data_dir"), ("--work-dir", "work_dir"),
                      ("--device", "device")):
        if invocation.get(key):
            parts += [flag, str(invocation[key])]
    return shlex.join(parts)
