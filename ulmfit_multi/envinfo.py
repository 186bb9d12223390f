"""What every artifact records about where it was made: code and library versions, host and hardware."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from . import __version__

_ENV_CACHE: dict[str, Any] = {}


def environment() -> dict[str, Any]:
    """Code and library versions, host and hardware, recorded in every artifact's metadata."""
    if _ENV_CACHE:
        return dict(_ENV_CACHE)
    env: dict[str, Any] = {
        "ulmfit_multi": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
    }
    for mod in ("torch", "numpy", "sentencepiece", "sklearn"):
        with contextlib.suppress(Exception):
            env[mod] = __import__(mod).__version__
    with contextlib.suppress(Exception):
        import torch

        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    _ENV_CACHE.update(env)
    return dict(env)


def git_commit() -> str:
    """The repository's commit (with '+dirty' when the tree has changes), or '' outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha}+dirty" if sha and dirty else sha
