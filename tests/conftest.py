"""Shared fixtures: a fixed terminal width, an isolated environment, the real-data mirror, and an S3 server
(moto) on 127.0.0.1 with one bucket.

Markers (slow, realdata, gpu) are declared in pyproject.toml (with --strict-markers); nothing is
registered here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
S3_BUCKET = "ulmfit-test"

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


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on 127.0.0.1 with one bucket (`s3_bucket`), the AWS_* variables pointing at it for the
    module's tests (and any process they start); yields its endpoint URL. Skips without s3fs or moto[server]."""
    s3fs = pytest.importorskip("s3fs", reason="needs s3fs: pip install -e '.[s3]'")
    server_mod = pytest.importorskip("moto.server", reason="needs moto[server]: pip install -e '.[test]'")
    pytest.importorskip("flask", reason="moto's server needs flask: pip install 'moto[server]'")
    import boto3

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint}
        for k, v in env.items():
            mp.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket=S3_BUCKET)
        s3fs.S3FileSystem.clear_instance_cache()  # fsspec reuses instances: one made for another module's server
        yield endpoint
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture(scope="module")
def s3_bucket(s3_server: str) -> str:
    """The name of the moto server's bucket."""
    return S3_BUCKET


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
