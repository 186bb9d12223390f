"""Shared fixtures: a fixed terminal width, an isolated environment, and the real-data mirror.

Markers (slow, realdata, gpu) are declared in pyproject.toml (with --strict-markers); nothing is
registered here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# typer/rich wrap help text to the terminal width; fix it so help assertions do not depend on it.
os.environ["COLUMNS"] = "200"
os.environ["TERMINAL_WIDTH"] = "200"
os.environ.pop("LINES", None)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every writable default location into a temporary folder: tests never write into the repo or
    $HOME. The mirror ($ULMFIT_MULTI_MIRROR) is read-only and left alone; tests that must not see one
    remove it themselves."""
    home = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("ULMFIT_MULTI_WORK", str(home / "work"))
    monkeypatch.setenv("ULMFIT_MULTI_DATA", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERMINAL_WIDTH", "200")


@pytest.fixture
def mirror_dir() -> Path:
    """The read-only real-data mirror ($ULMFIT_MULTI_MIRROR or <repo>/../shared/data); skips when absent."""
    env = os.environ.get("ULMFIT_MULTI_MIRROR", "")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real-data mirror not found at {path} (set ULMFIT_MULTI_MIRROR)")
    return path.resolve()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests (selected with -m gpu) skip on machines without CUDA, as torchtune's gpu_test."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in gpu_items:
        item.add_marker(skip)
