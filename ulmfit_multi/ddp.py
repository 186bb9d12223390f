"""Ray setup for this package, and the data-parallel LM loop on Ray Train.

`run_data_parallel(pretrain_worker, job, num_workers=N)` trains one LM direction on N Ray Train workers
(torch.distributed: gloo on CPU, NCCL on GPU); every rank runs `jobs.pretrain_direction` on its share of
each batch and rank 0 writes `result.json`. The pretrain stage uses it when `pretrain.workers` > 1.

Ray is imported only inside functions, so the rest of the package never needs it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from .atomic import write_json
from .paths import is_uri


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray already initialized; otherwise join `address`, or start a local Ray (no dashboard,
    `num_cpus` CPUs, this checkout on the workers' path), and shut it down on the way out."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=same_code_env())
    try:
        yield
    finally:
        ray.shutdown()


def same_code_env() -> dict[str, Any]:
    """runtime_env for a local Ray: workers import this very copy of ulmfit_multi (a checkout run with
    `python -m ...`), not another install that happens to be on their path. Joined clusters are left alone:
    there every node needs the package installed (docs/CLUSTER.md)."""
    root = str(Path(__file__).resolve().parents[1])
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join([root, *rest])}}


def run_data_parallel(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], *, num_workers: int,
                      use_gpu: bool | None, storage_path: str | Path) -> None:
    """Run `loop(config)` on `num_workers` Ray Train workers (TorchTrainer: torch.distributed is set up,
    gloo on CPU, NCCL on GPU); `storage_path` holds Ray Train's run state and must be shared storage on a
    multi-node cluster: a folder, or an object-storage URI (`s3://...`, see `storage_filesystem`). use_gpu
    None: when the Ray cluster has GPUs. Uses the initialized Ray (e.g. inside `pretrain_many`), or starts a
    local one."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    with ray_session(num_cpus=num_workers + 1):
        if is_uri(storage_path):
            storage, filesystem = storage_filesystem(str(storage_path))
        else:
            Path(storage_path).mkdir(parents=True, exist_ok=True)
            storage, filesystem = str(Path(storage_path).resolve()), None
        if use_gpu is None:
            use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        trainer = TorchTrainer(loop, train_loop_config=config,
                               scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
                               run_config=RunConfig(name=f"ddp-{uuid.uuid4().hex[:8]}", storage_path=storage,
                                                    storage_filesystem=filesystem))
        trainer.fit()


def storage_filesystem(uri: str) -> tuple[str, Any]:
    """Ray Train's (storage_path, storage_filesystem) for an object-storage URI: the path without its scheme on
    the work store's own fsspec filesystem (s3fs, gcsfs, ...: the same credentials and endpoint, e.g.
    $AWS_ENDPOINT_URL), wrapped for pyarrow. Ray Train only writes small state files there, so going through
    Python costs little; and pyarrow's native S3 client is not used, whose multipart uploads some
    S3-compatible servers answer in a form it rejects (moto 5.2.1: getmoto/moto#10055)."""
    import fsspec
    import pyarrow.fs

    fs, path = fsspec.core.url_to_fs(uri)
    return path, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))


def pretrain_worker(job: dict[str, Any]) -> None:
    """Ray Train worker loop of a data-parallel `pretrain`: every rank trains; rank 0 writes result.json."""
    import ray.train
    import ray.train.torch

    from .jobs import pretrain_direction

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    result = pretrain_direction(**job, device=str(ray.train.torch.get_device()), progress=False, rank=rank,
                                world_size=world)
    if rank == 0:
        write_json(Path(job["out"]) / "result.json", result)
