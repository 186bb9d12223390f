"""The stage store on object storage (objstore.py): the logic against `file://`, then S3 for real against a
moto server started on 127.0.0.1 (conftest.py's `s3_server`; skipped without moto[server] and s3fs:
`pip install -e ".[test,s3]"`).

    OMP_NUM_THREADS=1 python -m pytest tests/test_objstore.py -q    # about 25 s on 2 cores
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ulmfit_multi import objstore
from ulmfit_multi.objstore import MARKER, RemoteStore
from ulmfit_multi.paths import Paths
from ulmfit_multi.stages import run_stages, store_dir

from test_stages import NAMES, make_stages, statuses, tiny_cfg

FP = "ab" * 32


def stage_folder(root: Path, files: dict[str, str]) -> Path:
    """A finished local stage folder holding `files` and a marker."""
    done = root / "store" / "prep" / FP[:12]
    for rel, text in files.items():
        (done / rel).parent.mkdir(parents=True, exist_ok=True)
        (done / rel).write_text(text, encoding="utf-8")
    (done / MARKER).write_text(json.dumps({"stage": "prep", "summary": {"n": len(files)}}), encoding="utf-8")
    return done


def local_files(done: Path) -> dict[str, str]:
    """A stage folder's outputs: its files but the marker and the training checkpoints (never uploaded)."""
    return {str(p.relative_to(done)): p.read_text(encoding="utf-8") for p in sorted(done.rglob("*"))
            if p.is_file() and p.name != MARKER and "ckpt" not in p.relative_to(done).parts}


@pytest.fixture(params=["file", "s3"])
def store_uri(request, tmp_path: Path) -> str:
    """A fresh store URI: a local folder, or a prefix in the moto bucket."""
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/{tmp_path.name}"
    return f"file://{tmp_path}/remote"


def store(uri: str, cache: Path, owner: str, **kw) -> RemoteStore:
    return RemoteStore(uri, cache, owner=owner, **kw)


def test_publish_writes_the_marker_last_and_a_fresh_cache_downloads_it(store_uri: str, tmp_path: Path,
                                                                       monkeypatch) -> None:
    files = {"a.txt": "one", "sub/b.txt": "two", "ckpt/last.pt": "three"}
    done = stage_folder(tmp_path / "A", files)
    a = store(store_uri, tmp_path / "A", "A")
    writes: list[str] = []
    put_file, pipe_file = a.fs.put_file, a.fs.pipe_file
    monkeypatch.setattr(a.fs, "put_file", lambda lp, key, **kw: (writes.append(key), put_file(lp, key, **kw)))
    monkeypatch.setattr(a.fs, "pipe_file", lambda key, body, **kw: (writes.append(key), pipe_file(key, body, **kw)))
    create_local = objstore._create_local  # a local store's exclusive create (the marker there)
    monkeypatch.setattr(objstore, "_create_local", lambda path, body: (writes.append(str(path)),
                                                                      create_local(path, body))[1])
    assert not a.is_complete("prep", FP)
    assert a.publish("prep", FP, done)
    monkeypatch.undo()
    assert writes[-1].endswith(f"prep/{FP[:12]}/{MARKER}") and len(writes) == len(files)  # ckpt/ not uploaded
    assert a.is_complete("prep", FP)
    assert (done / MARKER).read_bytes() == a.marker("prep", FP)  # the local copy matches the store's marker

    b = store(store_uri, tmp_path / "B", "B")
    copy = tmp_path / "B" / "store" / "prep" / FP[:12]
    assert b.fetch("prep", FP, copy)
    outputs = {k: v for k, v in files.items() if not k.startswith("ckpt/")}  # checkpoints stay in the cache
    assert local_files(copy) == outputs and (copy / MARKER).read_bytes() == a.marker("prep", FP)
    size = sum(len(t) for t in outputs.values()) + len(a.marker("prep", FP))
    assert a.stats["bytes_up"] == size and b.stats["bytes_down"] == size
    assert b.stats["read"] == len(outputs) + 1 and "3 reads, 0 writes" in b.summary()
    gets = Counter()
    monkeypatch.setattr(b.fs, "get_file", lambda *a, **k: gets.update(["get"]))
    assert b.fetch("prep", FP, copy) and gets == Counter()  # the cached copy is reused: nothing downloaded


def test_an_upload_cut_short_is_not_complete_and_the_next_publish_completes_it(store_uri: str, tmp_path: Path,
                                                                              monkeypatch) -> None:
    files = {f"f{i}.txt": str(i) for i in range(4)}
    done = stage_folder(tmp_path / "A", files)
    a = store(store_uri, tmp_path / "A", "A")
    put_file, n = a.fs.put_file, Counter()

    def dying_put(lp, key, **kw):
        n["put"] += 1
        if n["put"] == 3:
            raise ConnectionError("network gone")
        return put_file(lp, key, **kw)

    monkeypatch.setattr(a.fs, "put_file", dying_put)
    with pytest.raises(ConnectionError):
        a.publish("prep", FP, done)
    monkeypatch.undo()
    b = store(store_uri, tmp_path / "B", "B")
    copy = tmp_path / "B" / "store" / "prep" / FP[:12]
    assert not b.is_complete("prep", FP) and not b.fetch("prep", FP, copy) and not copy.exists()
    assert a.publish("prep", FP, done)  # the rerun uploads everything again, marker last
    assert b.fetch("prep", FP, copy) and local_files(copy) == files


def test_a_download_cut_short_leaves_no_stage_in_the_cache(tmp_path: Path, monkeypatch) -> None:
    uri = f"file://{tmp_path}/remote"
    assert store(uri, tmp_path / "A", "A").publish("prep", FP, stage_folder(tmp_path / "A", {"a": "1", "b": "2"}))
    b = store(uri, tmp_path / "B", "B")
    get_file, n = b.fs.get_file, Counter()

    def dying_get(key, lp, **kw):
        n["get"] += 1
        if n["get"] == 2:
            raise ConnectionError("network gone")
        return get_file(key, lp, **kw)

    monkeypatch.setattr(b.fs, "get_file", dying_get)
    copy = tmp_path / "B" / "store" / "prep" / FP[:12]
    with pytest.raises(ConnectionError):
        b.fetch("prep", FP, copy)
    assert list(copy.parent.iterdir()) == []  # neither a stage nor a half download
    monkeypatch.undo()
    assert b.fetch("prep", FP, copy) and local_files(copy) == {"a": "1", "b": "2"}


def test_two_publishers_racing_leave_one_whole_stage(store_uri: str, tmp_path: Path) -> None:
    versions = {who: {f"f{i}.txt": f"{who}{i}" for i in range(6)} for who in "AB"}
    stores = {who: store(store_uri, tmp_path / who, who) for who in "AB"}
    dones = {who: stage_folder(tmp_path / who, versions[who]) for who in "AB"}
    won: dict[str, bool] = {}
    go = threading.Barrier(2)

    def publish(who: str) -> None:
        go.wait()
        won[who] = stores[who].publish("prep", FP, dones[who])

    threads = [threading.Thread(target=publish, args=(w,)) for w in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won.values()) == [False, True]
    winner = "A" if won["A"] else "B"
    copy = tmp_path / "C" / "store" / "prep" / FP[:12]
    assert store(store_uri, tmp_path / "C", "C").fetch("prep", FP, copy)
    assert local_files(copy) == versions[winner]  # all of one upload, none of the other
    loser = stores["B" if winner == "A" else "A"]
    assert not loser.fs.exists(loser.key("store", "prep", f"{FP[:12]}.up-{loser.owner}"))  # removed again


def test_without_exclusive_create_the_read_back_still_keeps_files_whole(tmp_path: Path, monkeypatch) -> None:
    """A store that ignores If-None-Match: the last marker wins, and each publisher learns which one did."""
    uri = f"file://{tmp_path}/remote"
    a, b = store(uri, tmp_path / "A", "A"), store(uri, tmp_path / "B", "B")
    for s in (a, b):
        plain = s.fs.pipe_file
        monkeypatch.setattr(s.fs, "pipe_file", lambda key, body, _p=plain, **kw: _p(key, body))
    # and the local filesystem's own exclusive create made a plain overwrite, decided by the read-back
    monkeypatch.setattr(objstore, "_create_local", lambda path, body: (path.parent.mkdir(parents=True, exist_ok=True),
                                                                      path.write_bytes(body),
                                                                      path.read_bytes() == body)[2])
    assert a.publish("prep", FP, stage_folder(tmp_path / "A", {"x": "A"}))
    # b read no marker before uploading (as if both started together), then overwrote a's
    first_read = Counter()
    real_read = b._read

    def read(key: str):
        first_read[key] += 1
        return None if key.endswith(MARKER) and first_read[key] == 1 else real_read(key)

    monkeypatch.setattr(b, "_read", read)
    assert b.publish("prep", FP, stage_folder(tmp_path / "B", {"x": "B"}))  # the last marker won, as read back
    copy = tmp_path / "C" / "store" / "prep" / FP[:12]
    store(uri, tmp_path / "C", "C").fetch("prep", FP, copy)
    assert local_files(copy) == {"x": "B"}  # b's upload, whole


def test_a_second_runner_waits_for_the_lease_and_uses_the_first_runners_stage(store_uri: str,
                                                                            tmp_path: Path) -> None:
    a = store(store_uri, tmp_path / "A", "A", poll_seconds=0.05)
    b = store(store_uri, tmp_path / "B", "B", poll_seconds=0.05)
    seen: list[bool] = []
    with a.claim("prep", FP) as held:
        assert held
        waiter = threading.Thread(target=lambda: seen.append(b.claim("prep", FP).__enter__()))
        waiter.start()
        time.sleep(0.3)
        assert seen == []  # still waiting
        assert a.publish("prep", FP, stage_folder(tmp_path / "A", {"x": "1"}))
    waiter.join(10)
    assert seen == [False]  # the stage is complete: b fetches it instead of computing it


def test_a_stage_published_between_the_check_and_the_lease_is_not_computed_again(store_uri: str,
                                                                                  tmp_path: Path) -> None:
    a = store(store_uri, tmp_path / "A", "A", poll_seconds=0.05)
    b = store(store_uri, tmp_path / "B", "B", poll_seconds=0.05)
    real, answers = b.is_complete, [False]  # b's first check ran before a published and released its lease

    def is_complete(stage: str, fp: str) -> bool:
        return answers.pop(0) if answers else real(stage, fp)

    b.is_complete = is_complete
    with a.claim("prep", FP) as held:
        assert held and a.publish("prep", FP, stage_folder(tmp_path / "A", {"x": "1"}))
    with b.claim("prep", FP) as held_b:
        assert held_b is False  # complete once the lease was taken: fetched, not computed
    assert not b.fs.exists(b.key("store", "prep", FP[:12] + ".lease"))


def test_an_expired_lease_is_taken_over(store_uri: str, tmp_path: Path) -> None:
    dead = store(store_uri, tmp_path / "A", "A", lease_seconds=0.2)
    dead.fs.pipe_file(dead.key("store", "prep", FP[:12] + ".lease"), dead._lease_body())  # never released
    b = store(store_uri, tmp_path / "B", "B", poll_seconds=0.05)
    started = time.time()
    with b.claim("prep", FP) as held:
        assert held and time.time() - started < 5
        lease = json.loads(b.fs.cat_file(b.key("store", "prep", FP[:12] + ".lease")))
        assert lease["owner"] == "B"
    assert not b.fs.exists(b.key("store", "prep", FP[:12] + ".lease"))  # released


def remote_paths(tmp_path: Path, uri: str, cache: str) -> Paths:
    return Paths(data_dir=tmp_path / "data", mirror=None, work_dir=tmp_path / cache, remote=uri)


def test_engine_publishes_each_stage_and_another_cache_downloads_instead_of_computing(store_uri: str,
                                                                                     tmp_path: Path) -> None:
    cfg = tiny_cfg()
    calls: Counter = Counter()
    first = run_stages(make_stages(calls), cfg, remote_paths(tmp_path, store_uri, "cacheA"))
    assert statuses(first) == dict.fromkeys(NAMES, "ran")
    elsewhere: Counter = Counter()
    second = run_stages(make_stages(elsewhere), cfg, remote_paths(tmp_path, store_uri, "cacheB"))
    assert statuses(second) == dict.fromkeys(NAMES, "skipped") and elsewhere == Counter()
    for a, b in zip(first.stages, second.stages):
        assert local_files(a.path) == local_files(b.path) and a.summary == b.summary
    local = run_stages(make_stages(Counter()), cfg, Paths(data_dir=tmp_path / "data", mirror=None,
                                                          work_dir=tmp_path / "plain"))
    assert [local_files(s.path) for s in local.stages] == [local_files(s.path) for s in second.stages]
    rs = RemoteStore(store_uri, tmp_path / "x")
    run_json = json.loads(rs.fs.cat_file(rs.key("runs", first.run_dir.name, "run.json")))
    assert [s["name"] for s in run_json["stages"]] == NAMES


def test_status_shows_what_the_store_holds_and_this_cache_lacks(store_uri: str, tmp_path: Path) -> None:
    from ulmfit_multi.stages import stage_status

    cfg = tiny_cfg()
    run_stages(make_stages(Counter()), cfg, remote_paths(tmp_path, store_uri, "cacheA"))
    states = {state for _, state, _ in stage_status(make_stages(Counter()), cfg, remote_paths(tmp_path, store_uri, "cacheB"))}
    assert states == {"done (store)"}
    assert {state for _, state, _ in stage_status(make_stages(Counter()), cfg,
                                                 remote_paths(tmp_path, store_uri, "cacheA"))} == {"done"}
    a, b = store(store_uri, tmp_path / "A", "A"), store(store_uri, tmp_path / "B", "B")
    assert b.stage_state("prep", FP) is None
    b.fs.pipe_file(b.key("store", "prep", FP[:12] + ".partial", "fwd", "ckpt", "last.pt"), b"x")
    assert b.stage_state("prep", FP) == "partial"
    with a.claim("prep", FP) as held:
        assert held and b.stage_state("prep", FP) == "running"
        assert a.publish("prep", FP, stage_folder(tmp_path / "A", {"x": "1"}))
    assert b.stage_state("prep", FP) == "done"


def test_two_concurrent_runs_compute_each_stage_once(store_uri: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("ulmfit_multi.objstore.POLL_SECONDS", 0.05)
    cfg, calls = tiny_cfg(), Counter()
    results: dict[str, object] = {}
    go = threading.Barrier(2)

    def run(cache: str) -> None:
        go.wait()
        results[cache] = run_stages(make_stages(calls), cfg, remote_paths(tmp_path, store_uri, cache))

    threads = [threading.Thread(target=run, args=(c,)) for c in ("cacheA", "cacheB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert calls == Counter(dict.fromkeys(NAMES, 1))  # one runner computed each stage, the other downloaded it
    a, b = results["cacheA"], results["cacheB"]
    for sa, sb in zip(a.stages, b.stages):
        assert {sa.status, sb.status} == {"ran", "skipped"}
        assert local_files(sa.path) == local_files(sb.path)
        assert (sa.path / MARKER).read_bytes() == (sb.path / MARKER).read_bytes()  # both hold the store's copy


def test_engine_publishes_a_stage_left_unpublished_and_resumes_a_crashed_one(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/remote"
    cfg, calls = tiny_cfg(), Counter()
    paths = remote_paths(tmp_path, uri, "cacheA")
    with pytest.raises(RuntimeError):
        run_stages(make_stages(calls, crash_at={"train": 3}), cfg, paths)
    rs = RemoteStore(uri, tmp_path / "x")
    fps = {s.name: s.path.name for s in run_stages(make_stages(Counter()), cfg, Paths(
        data_dir=tmp_path / "data", mirror=None, work_dir=tmp_path / "plain")).stages}
    assert rs.fs.exists(rs.key("store", "tok", fps["tok"], MARKER))
    assert not rs.fs.exists(rs.key("store", "train", fps["train"], MARKER))
    assert not rs.fs.exists(rs.key("store", "train", fps["train"] + ".lease"))  # released on the crash
    rs.fs.rm(rs.key("store", "tok"), recursive=True)  # as if tok's upload had been cut short
    again = run_stages(make_stages(calls), cfg, paths)
    assert again["train"].summary["steps_run"] == [0, 1, 2, 3, 4, 5]  # resumed from the local checkpoint
    assert rs.fs.exists(rs.key("store", "tok", fps["tok"], MARKER))  # published on the rerun
    assert all(rs.fs.exists(rs.key("store", n, fps[n], MARKER)) for n in NAMES)
    assert store_dir(paths, "train", again["train"].fingerprint).exists()


def test_paths_resolve_a_uri_to_a_local_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    p = Paths.resolve(work_dir="s3://bucket/some/prefix/")
    assert p.remote == "s3://bucket/some/prefix"
    assert p.work_dir == (tmp_path / "xdg" / "ulmfit_multi" / "work" / "s3" / "bucket" / "some" / "prefix").resolve()
    assert Paths.resolve(work_dir="s3://b/x", cache_dir=tmp_path / "c").work_dir == (tmp_path / "c").resolve()
    monkeypatch.setenv("ULMFIT_MULTI_WORK_CACHE", str(tmp_path / "env"))
    assert Paths.resolve(work_dir="s3://b/x").work_dir == (tmp_path / "env").resolve()
    assert Paths.resolve(work_dir=tmp_path / "w").remote is None


def test_tiny_recipe_through_s3_then_from_another_cache_gives_the_local_table(s3_bucket: str,
                                                                               tmp_path: Path) -> None:
    import torch

    from ulmfit_multi.pipeline import run_recipe

    from test_pipeline import write_tiny

    mirror, recipe = write_tiny(tmp_path)
    kw = dict(preset="base", mirror=mirror, progress=False, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        uri = f"s3://{s3_bucket}/recipe"
        a = run_recipe(recipe, work_dir=uri, cache_dir=tmp_path / "cacheA", data_dir=tmp_path / "dataA", **kw)
        # another machine: its own cache and data dir
        b = run_recipe(recipe, work_dir=uri, cache_dir=tmp_path / "cacheB", data_dir=tmp_path / "dataB", **kw)
        plain = run_recipe(recipe, work_dir=tmp_path / "plain", data_dir=tmp_path / "dataC", **kw)
    finally:
        torch.set_num_threads(threads)
    assert all(s.status == "ran" for s in a.stages)
    assert all(s.status == "skipped" for s in b.stages)  # all downloaded (the mirror's files need no fetching)
    assert [s.fingerprint for s in a.stages] == [s.fingerprint for s in b.stages] == [s.fingerprint for s in plain.stages]
    rows = [[line for line in (r["table"].path / "results.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("|")] for r in (a, b, plain)]  # the header names each run's own command
    assert rows[0] and rows[0] == rows[1] == rows[2]


def test_cli_work_dir_takes_a_uri(tmp_path: Path, monkeypatch) -> None:
    """`--work-dir file:///...` reaches the engine as a URI (not collapsed into a path) and is published to."""
    from typer.testing import CliRunner

    from ulmfit_multi.cli import app

    from test_pipeline import RECIPE, _dump

    _dump(tmp_path / "mirror/mr/wiki/tiny.xml.bz2", random.Random(0))
    (tmp_path / "tiny.toml").write_text(RECIPE, encoding="utf-8")
    monkeypatch.setenv("ULMFIT_MULTI_WORK_CACHE", str(tmp_path / "cache"))
    uri = f"file://{tmp_path}/remote"
    out = CliRunner().invoke(app, ["recipe", str(tmp_path / "tiny.toml"), "--preset", "base", "--until", "corpus",
                                   "--mirror", str(tmp_path / "mirror"), "--work-dir", uri, "-q"])
    assert out.exit_code == 0, out.output
    assert sorted(p.parent.parent.name for p in (tmp_path / "remote" / "store").glob(f"*/*/{MARKER}")) == [
        "corpus", "fetch"]
    assert (tmp_path / "cache" / "store" / "corpus").is_dir()
    assert list((tmp_path / "remote" / "runs").glob("*/run.json"))


def test_a_forced_rerun_replaces_the_stores_copy(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/remote"
    cfg = tiny_cfg()
    first = run_stages(make_stages(Counter()), cfg, remote_paths(tmp_path, uri, "cacheA"))
    rs = RemoteStore(uri, tmp_path / "x")
    before = json.loads(rs.marker("report", first["report"].fingerprint))["upload"]["prefix"]
    calls: Counter = Counter()
    again = run_stages(make_stages(calls), cfg, remote_paths(tmp_path, uri, "cacheB"), only="report", force=True)
    assert again["report"].status == "ran" and calls == Counter(report=1)
    after = json.loads(rs.marker("report", first["report"].fingerprint))["upload"]["prefix"]
    assert after != before and not rs.fs.exists(rs.key(before)) and rs.fs.exists(rs.key(after))
    assert (again["report"].path / MARKER).read_bytes() == rs.marker("report", first["report"].fingerprint)
