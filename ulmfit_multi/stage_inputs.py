"""The stage engine's side of the input files: what it asks of them, and adopting older store folders.

The engine (stages.py) hashes the identities of the input files a stage reads into its fingerprint. It
gets them from an `InputSource` (inputs.InputFiles for a recipe), or, for `--only` a later stage, from what
the run folder recorded in run.json, so that stage runs from the store alone. A store folder made before
file identities were part of the fingerprints is adopted (linked under its new fingerprint) when the
stage's input files are untouched since it started.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Protocol

DataIds = dict[str, dict[str, str]]  # input-file group -> {relative path: identity}


class InputSource(Protocol):
    """What the engine needs to know about a run's input files (implemented by `inputs.InputFiles`)."""

    def identities(self) -> DataIds:
        """{group: {relative path: identity}} of the input files as they are now."""

    def untouched_since(self, groups: tuple[str, ...], when: float) -> bool:
        """Whether no input file of `groups` has changed since `when` (epoch seconds)."""


def start_identities(files: InputSource | None, run_dir: Path, recorded: bool) -> DataIds:
    """The identities a run starts from: none without an InputSource; with `recorded`, the ones run.json
    holds (when it holds any); otherwise the files as they are now."""
    if files is None:
        return {}
    if recorded:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            ids = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["inputs"]
            if isinstance(ids, dict):
                return ids
    return files.identities()


def same_folder(new: Path, old: Path) -> bool:
    """Whether a stage's store folder is its legacy one (the same fingerprint, or adopted)."""
    return new == old or (new.exists() and old.exists() and new.resolve() == old.resolve())


def adopt_legacy(old: Path, new: Path, groups: tuple[str, ...], files: InputSource, meta: str) -> bool:
    """Link `new` to `old`, the folder the same stage made under its fingerprint without file identities,
    when `old` is finished, was made before identities were recorded (its `meta` file has no "data") and
    the files of `groups` are untouched since it started. Returns whether it did."""
    if old == new or not old.is_dir() or old.is_symlink() or new.is_symlink():
        return False
    try:
        record = json.loads((old / meta).read_text(encoding="utf-8"))
        started = datetime.strptime(record["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if "data" in record or not files.untouched_since(groups, started):
        return False
    new.symlink_to(old.name, target_is_directory=True)
    return True
