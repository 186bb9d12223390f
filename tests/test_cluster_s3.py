"""A running stage's checkpoints on the remote store (objstore.PartialSync) and `pretrain --langs` over Ray with an
object-storage work dir: fast tests against `file://` and the moto S3 server of conftest.py (the stage engine
with a stand-in training stage; the tiny recipe's pretrain stage cut short in one cache and resumed in another),
and slow ones on a local multi-node Ray cluster whose nodes have separate caches and no shared work dir.

    OMP_NUM_THREADS=1 python -m pytest tests/test_cluster_s3.py -q            # fast ones
    OMP_NUM_THREADS=1 python -m pytest tests/test_cluster_s3.py -q -m slow    # the Ray cluster ones
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ulmfit_multi.objstore import MARKER, RemoteStore
from ulmfit_multi.paths import Paths
from ulmfit_multi.stages import run_stages

from test_stages import TRAIN_STEPS, Crash, make_stages, tiny_cfg


@pytest.fixture(params=["file", "s3"])
def store_uri(request, tmp_path: Path) -> str:
    """A fresh store URI: a local folder, or a prefix in the moto bucket."""
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/{tmp_path.name}"
    return f"file://{tmp_path}/remote"


def remote_paths(tmp_path: Path, uri: str, cache: str) -> Paths:
    return Paths(data_dir=tmp_path / "data", mirror=None, work_dir=tmp_path / cache, remote=uri)


def partial_keys(rs: RemoteStore, stage: str) -> list[str]:
    """Every object under the store's `.partial/` folders of `stage`, relative to the store's root."""
    rs.fs.invalidate_cache()
    return sorted(k[len(rs.root) + 1:] for k in rs.fs.glob(rs.key("store", stage, "*.partial", "**"))
                  if rs.fs.isfile(k))


# ------------------------------------------------------------------ fast: the engine with a stand-in stage


def test_a_crashed_stages_checkpoint_is_in_the_store_and_another_cache_resumes_from_it(store_uri: str,
                                                                                     tmp_path: Path) -> None:
    cfg = tiny_cfg()
    with pytest.raises(Crash):
        run_stages(make_stages(Counter(), crash_at={"train": 3}), cfg, remote_paths(tmp_path, store_uri, "nodeA"))
    rs = RemoteStore(store_uri, tmp_path / "x")
    keys = partial_keys(rs, "train")
    assert [k.split("/", 3)[-1] for k in keys] == ["ckpt/state.json"]  # the checkpoint, under .partial/
    assert json.loads(rs.fs.cat_file(rs.key(keys[0])))["step"] == 3
    # another node: an empty cache; every finished stage is downloaded, train resumes from the store's checkpoint
    calls: Counter = Counter()
    again = run_stages(make_stages(calls), cfg, remote_paths(tmp_path, store_uri, "nodeB"))
    assert calls == Counter(train=1, base=1, report=1)  # prep and tok downloaded; base and report never ran
    assert again["train"].status == "ran" and again["train"].summary["steps_run"] == list(range(TRAIN_STEPS))
    assert json.loads((again["train"].path / "ckpt" / "state.json").read_text())["steps_run"][:3] == [0, 1, 2]
    assert rs.is_complete("train", again["train"].fingerprint)
    assert partial_keys(rs, "train") == []  # published: the running stage's checkpoints are gone from the store
    assert "ckpt" not in json.loads(rs.marker("train", again["train"].fingerprint))["upload"]["files"]


def test_pull_keeps_the_local_copy_of_the_stores_checkpoint_and_takes_a_newer_one(store_uri: str,
                                                                                 tmp_path: Path) -> None:
    fp = "cd" * 32
    a = RemoteStore(store_uri, tmp_path / "A", owner="A").partial_sync("train", fp, tmp_path / "A" / "p")
    ckpt = tmp_path / "A" / "p" / "fwd" / "ckpt" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_text("step 1")
    a.upload(ckpt)
    (ckpt.parent.parent / "history.jsonl").write_text("{}")  # not a checkpoint: never uploaded
    assert a.pull() == []  # the local file is the store's copy
    ckpt.write_text("step 2, upload lost")
    assert a.pull() == [] and ckpt.read_text() == "step 2, upload lost"  # a later local save is kept
    b = RemoteStore(store_uri, tmp_path / "B", owner="B").partial_sync("train", fp, tmp_path / "B" / "p")
    assert b.pull() == ["fwd/ckpt/last.pt"]  # another node: downloaded
    other = tmp_path / "B" / "p" / "fwd" / "ckpt" / "last.pt"
    assert other.read_text() == "step 1"
    time.sleep(0.05)  # a new mtime on file://
    other.write_text("step 3 on B")
    b.upload(other)
    assert a.pull() == ["fwd/ckpt/last.pt"] and ckpt.read_text() == "step 3 on B"  # the store's is newer
    assert a.uri("ray_train") == f"{store_uri}/store/train/{fp[:12]}.partial/ray_train"
    a.clear()
    assert partial_keys(RemoteStore(store_uri, tmp_path / "x"), "train") == []


def test_a_failed_checkpoint_upload_is_logged_and_training_goes_on(tmp_path: Path, monkeypatch, caplog) -> None:
    sync = RemoteStore(f"file://{tmp_path}/remote", tmp_path / "A").partial_sync("train", "ef" * 32, tmp_path / "p")
    ckpt = tmp_path / "p" / "ckpt" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_text("x")
    monkeypatch.setattr(sync.store.fs, "put_file", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("gone")))
    with caplog.at_level(logging.WARNING, logger="ulmfit_multi"):
        sync.upload(ckpt)
    assert "could not upload checkpoint" in caplog.text and "ConnectionError" in caplog.text
    assert not (ckpt.parent / "last.pt.stored").exists()


def test_a_growing_log_is_copied_to_the_store_at_start_while_it_grows_and_at_the_end(store_uri: str,
                                                                                    tmp_path: Path) -> None:
    rs = RemoteStore(store_uri, tmp_path / "x")
    local = tmp_path / "mr.log"
    local.write_text("first line\n")
    key = rs.key("logs", "mr.try1.host.log")
    with rs.log_sync(local, "mr.try1.host.log", period=0.05):
        deadline = time.time() + 10
        while not rs.fs.exists(key) and time.time() < deadline:
            time.sleep(0.02)
            rs.fs.invalidate_cache()
        assert rs.fs.cat_file(key) == b"first line\n"  # uploaded when the block started
        with local.open("a") as f:
            f.write("second line\n")
        while rs.fs.cat_file(key) != local.read_bytes() and time.time() < deadline:
            time.sleep(0.02)
        assert rs.fs.cat_file(key) == b"first line\nsecond line\n"  # and while it grew
        with local.open("a") as f:
            f.write("last line\n")
    assert rs.fs.cat_file(key) == local.read_bytes()  # and when it ended


def test_a_failed_log_upload_is_logged_and_the_work_goes_on(tmp_path: Path, monkeypatch, caplog) -> None:
    rs = RemoteStore(f"file://{tmp_path}/remote", tmp_path / "x")
    local = tmp_path / "mr.log"
    local.write_text("a line\n")

    def refuse(*args, **kwargs):
        raise OSError("store unreachable")

    monkeypatch.setattr(rs, "put_file", refuse)
    with caplog.at_level(logging.WARNING, logger="ulmfit_multi"):
        with rs.log_sync(local, "mr.try1.host.log", period=60):
            pass
    assert "could not upload the log" in caplog.text and "store unreachable" in caplog.text


def test_a_lost_tries_leases_are_released_for_its_retry(store_uri: str, tmp_path: Path) -> None:
    from ulmfit_multi.distributed import clear_lost_try

    rs = RemoteStore(store_uri, tmp_path / "x")
    mine = {"owner": "lost", "host": "node-a", "pid": 41, "expires": time.time() + 600}
    for stage, body in (("pretrain", mine), ("encode", {**mine, "pid": 42}), ("fetch", {**mine, "host": "b"})):
        rs.fs.pipe_file(rs.key("store", stage, "0123456789ab.lease"), json.dumps(body).encode())
    released = clear_lost_try(store_uri, {"host": "node-a", "pid": 41}, "node-b")
    assert [k.split("/")[-2] for k in released] == ["pretrain"]
    rs.fs.invalidate_cache()
    assert sorted(k.split("/")[-2] for k in rs.fs.glob(rs.key("store", "*", "*.lease"))) == ["encode", "fetch"]
    assert clear_lost_try(store_uri, None, "node-b") == []


def test_a_lost_tries_lock_files_are_removed_on_a_shared_work_dir(tmp_path: Path) -> None:
    from ulmfit_multi.distributed import clear_lost_try

    lock = tmp_path / "store" / "pretrain" / "0123456789ab.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("node-a:41")
    assert clear_lost_try(str(tmp_path), {"host": "node-a", "pid": 41}, "node-a") == []  # the engine takes it over
    assert clear_lost_try(str(tmp_path), {"host": "node-a", "pid": 41}, "node-b") == [str(lock)]


def test_cli_pretrain_langs_hands_a_uri_work_dir_to_pretrain_many(monkeypatch) -> None:
    from typer.testing import CliRunner

    from ulmfit_multi.cli import app

    seen: dict = {}
    monkeypatch.setattr("ulmfit_multi.distributed.pretrain_many", lambda langs, **kw: seen.update(langs=langs, **kw)
                        or [{"status": "ok"}])
    out = CliRunner().invoke(app, ["pretrain", "--langs", "mr,ta", "--work-dir", "s3://bucket/prefix",
                                   "--gpus-per-lang", "0"])
    assert out.exit_code == 0, out.output
    assert seen["langs"] == ["mr", "ta"] and seen["work_dir"] == "s3://bucket/prefix"  # a URI, not a path


# ------------------------------------------------------------------ fast: the tiny recipe's pretrain stage


def test_tiny_pretrain_cut_short_resumes_in_another_cache_from_the_stores_checkpoint(s3_bucket: str, tmp_path: Path,
                                                                                      monkeypatch, caplog) -> None:
    import torch

    from ulmfit_multi.objstore import PartialSync
    from ulmfit_multi.pipeline import run_recipe

    from test_pipeline import write_tiny

    mirror, recipe = write_tiny(tmp_path)
    kw = dict(preset="base", mirror=mirror, progress=False, device="cpu", until="pretrain",
              overrides=["pretrain.checkpoint_minutes=0"])  # a checkpoint after every step
    uri = f"s3://{s3_bucket}/cut"
    upload, uploads = PartialSync.upload, Counter()

    def dying_upload(self, path):
        upload(self, path)
        uploads[path.name] += 1
        if uploads["last.pt"] == 5:
            raise Crash("node lost")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with monkeypatch.context() as m:
            m.setattr(PartialSync, "upload", dying_upload)
            with pytest.raises(Crash):
                run_recipe(recipe, work_dir=uri, cache_dir=tmp_path / "nodeA", data_dir=tmp_path / "dataA", **kw)
        with caplog.at_level(logging.INFO, logger="ulmfit_multi"):
            b = run_recipe(recipe, work_dir=uri, cache_dir=tmp_path / "nodeB", data_dir=tmp_path / "dataB", **kw)
        plain = run_recipe(recipe, work_dir=tmp_path / "plain", data_dir=tmp_path / "dataC", **kw)
    finally:
        torch.set_num_threads(threads)
    assert "downloaded pretrain's checkpoints from the store: fwd/ckpt/last.pt" in caplog.text
    assert "resuming from" in caplog.text
    assert b["pretrain"].status == "ran" and b["pretrain"].fingerprint == plain["pretrain"].fingerprint
    assert b["pretrain"].summary["fwd"]["steps"] == plain["pretrain"].summary["fwd"]["steps"]
    for d in ("fwd", "bwd"):  # resumed exactly: the same model as one uninterrupted run
        assert b["pretrain"].summary[d]["valid_ppl"] == pytest.approx(plain["pretrain"].summary[d]["valid_ppl"],
                                                                      rel=1e-6)
    assert (b["pretrain"].path / "fwd" / "history.jsonl").exists()
    rs = RemoteStore(uri, tmp_path / "x")
    assert partial_keys(rs, "pretrain") == [] and rs.is_complete("pretrain", b["pretrain"].fingerprint)


# ------------------------------------------------------------------ slow: a local multi-node Ray cluster


def tiny_runner(lang: str, *, overrides: dict, **kw):
    """run_recipe on the tiny recipe for `lang` (overrides: {"recipe": path, "sets": {lang: [...]},
    "tries": folder}); records each try's node and pid in <tries>/<lang>.jsonl."""
    import ray

    from ulmfit_multi.pipeline import run_recipe

    with open(Path(overrides["tries"]) / f"{lang}.jsonl", "a") as f:
        f.write(json.dumps({"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                            "cache": os.environ.get("ULMFIT_MULTI_WORK_CACHE")}) + "\n")
    return run_recipe(overrides["recipe"], overrides=overrides["sets"][lang], device="cpu", **kw)


@pytest.fixture(scope="module")
def s3_cluster(s3_server, tmp_path_factory):
    """A head node (no CPU: tasks go to the workers) and three one-CPU worker nodes, each with its own
    $ULMFIT_MULTI_WORK_CACHE; the AWS_* variables of the moto server reach them through the environment."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from ulmfit_multi.ddp import same_code_env

    root = tmp_path_factory.mktemp("caches")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = same_code_env()["env_vars"]["PYTHONPATH"]
    env = {"OMP_NUM_THREADS": "1"}
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "env_vars": {**env, "ULMFIT_MULTI_WORK_CACHE": str(root / "head")},
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    for i in range(3):
        c.add_node(num_cpus=1, env_vars={**env, "ULMFIT_MULTI_WORK_CACHE": str(root / f"node{i}")})
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    yield c
    ray.shutdown()
    c.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _tries(folder: Path, lang: str) -> list[dict]:
    f = folder / f"{lang}.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


@pytest.mark.slow
def test_two_languages_over_s3_on_nodes_without_a_shared_disk_and_a_killed_node_resumes(
        s3_cluster, s3_bucket: str, tmp_path: Path) -> None:
    """Two languages (the tiny recipe; "ta" with another vocabulary) pretrain through the S3 endpoint; the node
    of one is removed after a few of its pretrain checkpoints are in the store, and the retry on another node
    (an empty cache) downloads the finished stages and that checkpoint and resumes from it."""
    from ulmfit_multi.distributed import pretrain_many

    from test_pipeline import write_tiny

    cluster = s3_cluster
    mirror, recipe = write_tiny(tmp_path)
    (tmp_path / "tries").mkdir()
    sets = {"mr": ["pretrain.checkpoint_minutes=0", "pretrain.epochs=4", "pretrain.max_batches_per_epoch=60"],
            "ta": ["pretrain.checkpoint_minutes=0", "tokenizer.vocab_size=180"]}
    overrides = {"recipe": str(recipe), "sets": sets, "tries": str(tmp_path / "tries")}
    uri = f"s3://{s3_bucket}/cluster"
    rs = RemoteStore(uri, tmp_path / "x")
    result: dict = {}
    lines: list[str] = []

    def run() -> None:
        result["out"] = pretrain_many(["mr", "ta"], preset="base", overrides=overrides, mirror=mirror,
                                      data_dir=tmp_path / "data", work_dir=uri, address=cluster.address,
                                      gpus_per_lang=0, max_retries=2, runner=tiny_runner, echo=lines.append)

    t = threading.Thread(target=run)
    t.start()
    victim, deadline = None, time.time() + 240
    while victim is None and time.time() < deadline and t.is_alive():  # mr's pretrain, a few checkpoints in
        keys = [k for k in partial_keys(rs, "pretrain") if k.endswith("fwd/ckpt/last.pt")]
        tries = _tries(tmp_path / "tries", "mr")
        for key in keys:
            try:  # the stage's lease names the process computing it
                pid = json.loads(rs.fs.cat_file(rs.key(key.split(".partial/")[0] + ".lease")))["pid"]
            except FileNotFoundError:
                continue
            if tries and tries[0]["pid"] == pid:
                victim = tries[0]
        time.sleep(0.5)
    assert victim, f"mr never checkpointed its pretrain stage to the store: {lines}"
    node = next(n for n in cluster.worker_nodes if n.node_id == victim["node"])
    cluster.remove_node(node, allow_graceful=False)
    t.join(timeout=600)
    assert not t.is_alive(), "pretrain_many did not finish"
    by = {s["lang"]: s for s in result["out"]}
    assert [s["status"] for s in result["out"]] == ["ok", "ok"], result["out"]
    tries = _tries(tmp_path / "tries", "mr")
    assert len(tries) == 2 and by["mr"]["attempts"] == 2 and tries[1]["node"] != victim["node"]
    assert tries[1]["cache"] != victim["cache"]  # another node's cache
    log_text = (Path(tries[1]["cache"]) / "logs" / "mr.log").read_text()
    assert "removed " in log_text and ".lease of the lost try" in log_text  # its lease released at once
    assert "downloaded pretrain's checkpoints from the store" in log_text and "resuming from" in log_text
    rs.fs.invalidate_cache()  # each try's log is in the store, the lost node's too (up to its last upload)
    logs = {k.rsplit("/", 1)[-1]: rs.fs.cat_file(k).decode() for k in rs.fs.glob(rs.key("logs", "mr.try*.log"))}
    assert sorted(n.split(".")[1] for n in logs) == ["try1", "try2"], sorted(logs)
    assert "=== mr: try 1 on node" in next(t for n, t in logs.items() if ".try1." in n)
    assert "=== mr: finished in" in next(t for n, t in logs.items() if ".try2." in n)
    assert set(by["mr"]["valid_ppl"]) == {"fwd", "bwd"} and by["ta"]["valid_ppl"]
    assert partial_keys(rs, "pretrain") == []
    rs.fs.invalidate_cache()
    assert len(rs.fs.glob(rs.key("store", "pretrain", "*", MARKER))) == 2  # both languages' stages, complete
    assert not rs.fs.glob(rs.key("store", "*", "*.lease"))


@pytest.mark.slow
def test_data_parallel_pretrain_keeps_ray_trains_state_in_the_store(s3_bucket: str, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """pretrain.workers=2 with an s3:// work dir: Ray Train's storage_path is the stage's `.partial/ray_train`
    in the store (pyarrow's S3 filesystem at the moto endpoint), rank 0 uploads its checkpoints, and the
    store's `.partial/` is gone once the stage is published."""
    pytest.importorskip("ray.train", reason="needs ray[train] (pyarrow)")
    from ulmfit_multi.objstore import PartialSync
    from ulmfit_multi.pipeline import run_recipe

    from test_pipeline import write_tiny

    mirror, recipe = write_tiny(tmp_path)
    seen: list[str] = []
    clear = PartialSync.clear

    def clear_and_record(self, always=False):  # what the store held under .partial/ just before it is deleted
        self.store.fs.invalidate_cache()
        seen.extend(k[len(self.prefix):] for k in self.store.fs.find(self.prefix))
        clear(self, always)

    monkeypatch.setattr(PartialSync, "clear", clear_and_record)
    uri = f"s3://{s3_bucket}/ddp"
    res = run_recipe(recipe, preset="base", overrides=["pretrain.workers=2", "pretrain.checkpoint_minutes=0"],
                     mirror=mirror, work_dir=uri, cache_dir=tmp_path / "cache", data_dir=tmp_path / "data",
                     progress=False, device="cpu", until="pretrain")
    assert res["pretrain"].status == "ran" and set(res["pretrain"].summary) == {"fwd", "bwd"}
    assert any(k.startswith("/ray_train/ddp-") for k in seen), seen  # Ray Train wrote its run state there
    assert "/fwd/ckpt/last.pt" in seen and "/bwd/ckpt/last.pt" in seen  # uploaded by rank 0 in its worker
    assert partial_keys(RemoteStore(uri, tmp_path / "x"), "pretrain") == []
    assert not (res["pretrain"].path / "ray_train").exists()
