"""Where things live: data root, read-only mirror, work directory.

Precedence for each: command-line flag > environment variable > default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout (recipes and langs: see resources.py)
ENV_DATA = "ULMFIT_MULTI_DATA"
ENV_MIRROR = "ULMFIT_MULTI_MIRROR"
ENV_WORK = "ULMFIT_MULTI_WORK"


def default_data_dir() -> Path:
    """The user's cache dir: $XDG_CACHE_HOME/ulmfit_multi/data (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ulmfit_multi" / "data"


@dataclass(frozen=True)
class Paths:
    """Resolved locations for one run."""

    data_dir: Path
    mirror: Path | None
    work_dir: Path

    @classmethod
    def resolve(cls, data_dir: str | Path | None = None, mirror: str | Path | None = None,
                work_dir: str | Path | None = None) -> "Paths":
        """Apply flag > env > default for each location."""
        data = Path(data_dir or os.environ.get(ENV_DATA) or default_data_dir()).expanduser()
        mir = mirror or os.environ.get(ENV_MIRROR) or None
        work = Path(work_dir or os.environ.get(ENV_WORK) or "work").expanduser()
        return cls(data.resolve(), Path(mir).expanduser().resolve() if mir else None, work.resolve())
