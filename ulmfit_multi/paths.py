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
ENV_WORK_CACHE = "ULMFIT_MULTI_WORK_CACHE"  # the node-local copy of a work store at an object-storage URI
ENV_MIRROR_CACHE = "ULMFIT_MULTI_MIRROR_CACHE"  # the node-local copy of a mirror at a URI (mirror.py)


def is_uri(location: str | Path | None) -> bool:
    """Whether a work dir is an object-storage (or any fsspec) URI such as `s3://bucket/prefix`, not a path."""
    return isinstance(location, str) and "://" in location


def default_work_cache(uri: str, kind: str = "work") -> Path:
    """The node-local cache of a remote work store (or, kind "mirror", of a remote mirror):
    $XDG_CACHE_HOME/ulmfit_multi/<kind>/<protocol>/<bucket>/<prefix>."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ulmfit_multi" / kind / uri.replace("://", "/", 1).strip("/")


def default_data_dir() -> Path:
    """The user's cache dir: $XDG_CACHE_HOME/ulmfit_multi/data (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ulmfit_multi" / "data"


@dataclass(frozen=True)
class Paths:
    """Resolved locations for one run."""

    data_dir: Path
    mirror: Path | None
    work_dir: Path  # with `remote`: the node-local cache the stages read and write (see objstore.py)
    remote: str | None = None  # the work store's object-storage URI, when it is one
    mirror_remote: str | None = None  # the mirror's URI, when it is one: `mirror` is then its local copy

    @classmethod
    def resolve(cls, data_dir: str | Path | None = None, mirror: str | Path | None = None,
                work_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> "Paths":
        """Apply flag > env > default for each location. A work dir given as a URI (`s3://bucket/prefix`)
        becomes `remote`, and `work_dir` its local cache (`cache_dir` > $ULMFIT_MULTI_WORK_CACHE > default); a
        mirror given as a URI becomes `mirror_remote`, and `mirror` its local copy ($ULMFIT_MULTI_MIRROR_CACHE >
        default), which `mirror.sync_mirror` fills."""
        data = Path(data_dir or os.environ.get(ENV_DATA) or default_data_dir()).expanduser()
        mir = mirror or os.environ.get(ENV_MIRROR) or None
        given = work_dir or os.environ.get(ENV_WORK) or "work"
        remote = given.rstrip("/") if is_uri(given) else None
        if remote:
            work = Path(cache_dir or os.environ.get(ENV_WORK_CACHE) or default_work_cache(remote)).expanduser()
        else:
            work = Path(given).expanduser()
        mir_remote = str(mir).rstrip("/") if is_uri(str(mir) if mir else None) else None
        if mir_remote:
            mir = os.environ.get(ENV_MIRROR_CACHE) or default_work_cache(mir_remote, "mirror")
        return cls(data.resolve(), Path(mir).expanduser().resolve() if mir else None, work.resolve(), remote,
                   mir_remote)
