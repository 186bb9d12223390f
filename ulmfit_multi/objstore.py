"""The stage store at an object-storage URI (`s3://bucket/prefix`, `gs://...`, `file:///...`: any fsspec
filesystem), with a node-local cache.

Stages run as ever in the local cache (`Paths.work_dir`, laid out like a local work dir); a finished stage is
then published to the remote store, and a run on another machine (another cache) downloads it instead of
computing it again. Remote layout under the URI:

    store/<stage>/<fp12>/_stage.json      the marker: the stage's _stage.json + "upload" (prefix, {file: bytes}, owner)
    store/<stage>/<fp12>.up-<owner>/...   the files of one upload; the marker names the upload it completes
    store/<stage>/<fp12>.lease            who is computing the stage now, and until when
    store/<stage>/<fp12>.partial/...      a running stage's checkpoints (`ckpt/` files), and Ray Train's run state
    runs/<run folder>/...                 run.json, config.resolved.toml (the run folder's regular files)
    logs/<lang>.try<n>.<host>.log         `pretrain --langs`: each try's log, uploaded as it grows (`LogSync`)

**Marker last.** Object stores have no rename, so a stage cannot be made complete by moving a folder: its files
go to a prefix of their own, and the marker, written after the last of them, is what makes the stage complete.
A cut upload leaves files and no marker: not complete; the next publisher uploads under its own prefix.

**Two runners on one stage.** (1) Correctness: the marker is written with a conditional put (`If-None-Match: *`
on S3; a hard link on a local filesystem), then read back; whoever's marker is there owns the stage, and the loser
deletes its own upload prefix (never the winner's). Because every upload has its own prefix, two publishers
never overwrite each other's files: the complete stage is always one upload's files. On a store that ignores
the condition (some S3-compatible servers) or a filesystem without exclusive create, the last marker wins; the
read-back tells each publisher which one, so files still never mix (the losing upload may stay as an orphan).
(2) Cost: a lease object (`<fp12>.lease`: owner and expiry, renewed every third of its life while the stage
runs) is taken with the same conditional put before computing, so a second runner waits for the marker
instead of computing the stage twice. A lease past its expiry (its holder died) is deleted and taken anew;
two runners doing that at the same moment may both compute (the marker scheme keeps the result whole).
Expiry compares wall clocks: nodes' clocks must agree to well within the lease time (default 10 minutes).

**Checkpoints of a running stage** (`PartialSync`). Each checkpoint a training stage writes in its local
`.partial/` folder is uploaded at once to the same relative key under `store/<stage>/<fp12>.partial/`; a stage
starting in a cache that lacks them downloads them first, so a retry on another node resumes where the lost
one last checkpointed. They are deleted from the store once the stage is published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from .atomic import atomic_write, remove_path, replace_folder
from .errors import StageError
from .paths import Paths

MARKER = "_stage.json"
LEASE_SECONDS = 600.0
POLL_SECONDS = 5.0
BAR_BYTES = 8 << 20  # files at least this large get a progress bar
log = logging.getLogger("ulmfit_multi")


class RemoteStore:
    """A work store at `uri`, seen through the local cache directory `cache` (see the module docstring)."""

    def __init__(self, uri: str, cache: Path, *, owner: str | None = None, lease_seconds: float | None = None,
                 poll_seconds: float | None = None, progress: bool = False):
        import fsspec

        self.uri = uri.rstrip("/")
        local = self.uri.startswith(("file://", "local://"))
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **({"auto_mkdir": True} if local else {}))
        self.root = self.root.rstrip("/")
        self.cache = Path(cache)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
        self.poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self.progress = progress
        # what this store object asked of the remote: reads, writes, deletes (calls, not HTTP requests) and bytes
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"RemoteStore({self.uri!r}, cache={str(self.cache)!r})"

    def key(self, *parts: str) -> str:
        """The object key of a path relative to the store's root."""
        return "/".join([self.root, *parts])

    def marker(self, stage: str, fp: str) -> bytes | None:
        """The marker object of a stage (its bytes), or None while the stage is not complete in the store."""
        return self._read(self.key("store", stage, fp[:12], MARKER))

    def stage_state(self, stage: str, fp: str) -> str | None:
        """What the store holds of a stage: "done" (its marker), "running" (an unexpired lease: another runner
        computes it now), "partial" (checkpoints of an unfinished try), or None. For `ulmfit-multi status`."""
        if self.is_complete(stage, fp):
            return "done"
        lease = self._read(self.key("store", stage, fp[:12] + ".lease"))
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if lease is not None and json.loads(lease)["expires"] >= time.time():
                return "running"
        self.stats["read"] += 1
        return "partial" if self.fs.exists(self.key("store", stage, fp[:12] + ".partial")) else None

    def is_complete(self, stage: str, fp: str) -> bool:
        """Whether the store holds a complete copy of the stage (its marker exists)."""
        return self.marker(stage, fp) is not None

    def fetch(self, stage: str, fp: str, done: Path) -> bool:
        """Make the local `done` folder the store's complete copy of the stage, if the store has one; returns
        whether it does. A local copy whose marker equals the store's is kept; any other is replaced."""
        body = self.marker(stage, fp)
        if body is None:
            return False
        local = done / MARKER
        if local.is_file() and local.read_bytes() == body:
            return True
        upload = json.loads(body).get("upload")
        if upload is None:  # e.g. a local work dir copied into the bucket: its files and marker came in any order
            raise StageError(f"{self.key('store', stage, fp[:12], MARKER)}: a marker without an upload record; "
                             "publish stages with ulmfit_multi, not by copying a work dir (delete it to recompute)")
        tmp = done.with_name(f"{done.name}.download-{uuid.uuid4().hex[:8]}")  # two downloaders never share it
        tmp.mkdir(parents=True)
        try:
            for rel, size in upload["files"].items():
                self.get_file(self.key(upload["prefix"], rel), tmp / rel, size)
            (tmp / MARKER).write_bytes(body)  # last, as in the store
            replace_folder(tmp, done, done.with_name(f"{done.name}.old-{uuid.uuid4().hex[:8]}"))
        finally:
            remove_path(tmp)  # a download cut short leaves nothing behind
        return True

    def publish(self, stage: str, fp: str, done: Path, *, replace: bool = False) -> bool:
        """Upload a finished local stage folder (but ckpt/), then its marker, last. Returns whether this copy is the
        store's now (False: another runner's marker was there first; this upload is removed again).
        `replace`: put the marker even over an existing one (a forced rerun)."""
        marker_key = self.key("store", stage, fp[:12], MARKER)
        old = self._read(marker_key)
        if old is not None and not replace:
            return False
        prefix = f"store/{stage}/{fp[:12]}.up-{self.owner}"
        # training checkpoints (ckpt/) of a finished stage are not outputs (see `outputs` in its marker): they
        # stay in the cache, which saves their bytes (optimizer state: twice a model's) on every upload
        files = {rel: (done / rel).stat().st_size for rel in sorted(
            p.relative_to(done).as_posix() for p in done.rglob("*") if p.is_file() and "ckpt" not in
            p.relative_to(done).parts) if rel != MARKER}
        for rel, size in files.items():
            self.put_file(done / rel, self.key(prefix, rel), size)
        meta = json.loads((done / MARKER).read_text(encoding="utf-8"))
        meta["upload"] = {"prefix": prefix, "files": files, "owner": self.owner, "bytes": sum(files.values())}
        body = json.dumps(meta, indent=2, ensure_ascii=False).encode()
        if replace and old is not None:
            self.stats.update(write=1, bytes_up=len(body))
            self.fs.pipe_file(marker_key, body)
            won = self._read(marker_key) == body
        else:
            won = self._create(marker_key, body)
        if not won:
            self.remove(self.key(prefix))
            return False
        with atomic_write(done / MARKER, "wb", encoding=None) as f:  # the local copy matches the store's marker
            f.write(body)
        if old is not None:  # a forced rerun: the replaced upload's files go
            old_prefix = json.loads(old)["upload"]["prefix"]
            if old_prefix != prefix:
                self.remove(self.key(old_prefix))
        return True

    @contextlib.contextmanager
    def claim(self, stage: str, fp: str, *, force: bool = False) -> Iterator[bool]:
        """Hold the stage's lease while the block computes it; yields True when held, False when another runner
        completed the stage while this one waited for its lease (fetch it then). `force`: compute even when the
        stage is complete already (still one runner at a time)."""
        key = self.key("store", stage, fp[:12] + ".lease")
        unreadable_since: float | None = None
        while True:
            if not force and self.is_complete(stage, fp):
                yield False
                return
            if self._create(key, self._lease_body()):
                # the runner before this one may have published and released between the check and the create
                if not force and self.is_complete(stage, fp):
                    self.remove(key)
                    yield False
                    return
                break
            held = self._read(key)
            if held is None:  # released between the create and the read: look again at once
                continue
            try:
                expired = json.loads(held)["expires"] < time.time()
                unreadable_since = None
            except (ValueError, KeyError, TypeError):
                # caught mid-write (a local filesystem writes in place): unreadable for a whole lease time means
                # its writer died while writing it
                unreadable_since = unreadable_since or time.time()
                expired = time.time() - unreadable_since > self.lease_seconds
            if expired:
                self.remove(key)
            else:
                time.sleep(self.poll_seconds)
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(key, stop), daemon=True)
        renew.start()
        try:
            yield True
        finally:
            stop.set()
            renew.join()
            with contextlib.suppress(Exception):
                held = self._read(key)
                if held is not None and json.loads(held).get("owner") == self.owner:
                    self.remove(key)

    def summary(self) -> str:
        """One line: the object reads, writes and deletes made so far and the bytes moved each way."""
        st = self.stats
        return (f"{self.uri}: {st['read']} reads, {st['write']} writes, {st['delete']} deletes, "
                f"{st['bytes_up']:,} bytes up, {st['bytes_down']:,} bytes down")

    def upload_run(self, run_dir: Path) -> None:
        """Copy the run folder's regular files (run.json, config.resolved.toml, ...) to `runs/<name>/`; its
        links to store folders stay local (run.json names each stage's fingerprint)."""
        for p in sorted(run_dir.iterdir()):
            if p.is_file() and not p.is_symlink():
                self.put_file(p, self.key("runs", run_dir.name, p.name), p.stat().st_size)

    def _lease_body(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": time.time() + self.lease_seconds}).encode()

    def _renew(self, key: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            with contextlib.suppress(Exception):
                self.stats["write"] += 1
                self.fs.pipe_file(key, self._lease_body())

    def _create(self, key: str, body: bytes) -> bool:
        """Write `key` only if it does not exist; whether `body` is what the store holds afterwards."""
        self.stats.update(write=1, bytes_up=len(body))
        if "file" in _protocols(self.fs):
            return _create_local(Path(key), body)
        try:
            self.fs.pipe_file(key, body, mode="create")
        except FileExistsError:
            return False
        except TypeError:  # a filesystem without `mode`: plain put, the read-back decides
            self.fs.pipe_file(key, body)
        except OSError:  # e.g. a retried request whose first try went through: the read-back decides
            if self._read(key) != body:
                raise
        return self._read(key) == body

    def _read(self, key: str) -> bytes | None:
        self.stats["read"] += 1
        try:  # s3fs asks for the size first (a HEAD) unless told to read in one request
            body = self.fs.cat_file(key, **({"max_concurrency": 1} if hasattr(self.fs, "max_concurrency") else {}))
        except FileNotFoundError:
            return None
        self.stats["bytes_down"] += len(body)
        return body

    def remove(self, key: str) -> None:
        """Delete an object, or every object under a prefix (nothing when there is none)."""
        self.stats["delete"] += 1
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(key, recursive=True)

    def put_file(self, local: Path, key: str, size: int) -> None:
        """Upload a local file of `size` bytes to `key` (a progress bar for large ones)."""
        self.stats.update(write=1, bytes_up=size)
        with _bar(self.progress, size, f"upload {local.name}") as callback:
            self.fs.put_file(str(local), key, callback=callback)

    def get_file(self, key: str, local: Path, size: int) -> None:
        """Download `key` (`size` bytes) to a local file, making its folder."""
        local.parent.mkdir(parents=True, exist_ok=True)
        self.stats.update(read=1, bytes_down=size)
        with _bar(self.progress, size, f"download {local.name}") as callback:
            self.fs.get_file(key, str(local), callback=callback)

    def release_leases(self, host: str, pid: int) -> list[str]:
        """Delete the stage leases held by process `pid` on `host` (a try known to be over: its node was lost),
        so that its retry takes them at once instead of waiting for them to expire; returns their keys."""
        self.stats["read"] += 1
        self.fs.invalidate_cache()  # s3fs caches listings; a path's entry only drops its own and its parents'
        released = []
        for key in self.fs.glob(self.key("store", "*", "*.lease")):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                held = json.loads(self._read(key) or b"null")
                if held.get("host") == host and held.get("pid") == pid:
                    self.remove(key)
                    released.append(key)
        return released

    def log_sync(self, local: Path, name: str, period: float = 60.0) -> "LogSync":
        """Keep `logs/<name>` in the store a copy of the growing local log file `local` (see `LogSync`)."""
        return LogSync(self, local, self.key("logs", name), period)

    def partial_sync(self, stage: str, fp: str, partial: Path) -> "PartialSync":
        """The checkpoints of stage `stage` (fingerprint `fp`) running in the local folder `partial`."""
        return PartialSync(self, stage, fp, partial)


class PartialSync:
    """A running stage's checkpoints in the store: `store/<stage>/<fp12>.partial/<rel>` mirrors the `ckpt/` files
    of the local `.partial/` folder. Picklable (a Ray Train worker can upload through it).

    Each uploaded file gets a local sidecar `<file>.stored` holding the store object's identity (size and
    ETag, or mtime on a filesystem). `pull` keeps a local file whose sidecar matches the store's object (the
    local one is that upload, or a later save whose upload failed) and downloads every other one: the store's
    copy is the one the latest try left."""

    def __init__(self, store: RemoteStore, stage: str, fp: str, partial: Path):
        self.store, self.partial = store, Path(partial)
        self.prefix = store.key("store", stage, fp[:12] + ".partial")
        self.used = False  # whether the store may hold something under `prefix` (clear() then deletes it)

    def uri(self, rel: str) -> str:
        """The URI of `rel` under the stage's `.partial/` in the store (e.g. Ray Train's storage_path)."""
        self.used = True
        return f"{self.store.uri}/{self.prefix[len(self.store.root):].strip('/')}/{rel}"

    def upload(self, path: Path) -> None:
        """Copy a checkpoint file just written under the local `.partial/` to the same key in the store.

        On an object store a PUT (single or multipart) makes the object appear whole or not at all, and a
        reader sees the old object until then, so the key is written directly: one request, no server-side
        copy of a large file. Where `put` copies into place (a local or mounted filesystem) it goes to a
        temporary name first and is renamed. A failed upload is logged, not raised: training goes on, and the
        checkpoint stays in the cache."""
        path = Path(path)
        key = f"{self.prefix}/{path.relative_to(self.partial).as_posix()}"
        self.used = True
        try:
            size = path.stat().st_size
            if {"file", "local"} & set(_protocols(self.store.fs)):
                tmp = f"{key}.up-{self.store.owner}"
                self.store.put_file(path, tmp, size)
                self.store.fs.mv(tmp, key)
            else:
                self.store.put_file(path, key, size)
            self.store.stats["read"] += 1
            with atomic_write(_sidecar(path)) as f:
                f.write(_identity(self.store.fs.info(key)))
        except Exception as e:  # the network, a full bucket: the local checkpoint still resumes a local retry
            log.warning("could not upload checkpoint %s to %s: %s: %s", path, key, type(e).__name__, e)

    def pull(self) -> list[str]:
        """Download the store's checkpoint files that the local `.partial/` lacks or holds in another version
        (see the class docstring); returns their relative paths."""
        fs = self.store.fs
        self.store.stats["read"] += 1  # one listing (a LIST request per 1,000 keys on S3)
        fs.invalidate_cache(self.prefix)
        try:
            found = fs.find(self.prefix, detail=True)
        except FileNotFoundError:
            found = {}
        got = []
        for key, info in sorted(found.items()):
            self.used = True
            rel = key[len(self.prefix):].strip("/")
            if "ckpt" not in rel.split("/")[:-1] or ".up-" in rel:  # Ray Train's state, an unfinished upload
                continue
            local, identity = self.partial / rel, _identity(info)
            side = _sidecar(local)
            if local.is_file() and side.is_file() and side.read_text(encoding="utf-8") == identity:
                continue
            tmp = local.with_name(f".{local.name}.download-{uuid.uuid4().hex[:8]}")
            try:
                self.store.get_file(key, tmp, int(info.get("size") or 0))
                os.replace(tmp, local)
            finally:
                tmp.unlink(missing_ok=True)
            with atomic_write(side) as f:
                f.write(identity)
            got.append(rel)
        return got

    def clear(self, always: bool = False) -> None:
        """Delete the stage's `.partial/` from the store (the stage is published, or rerun from scratch) if this
        object put or found anything there (`always`: in any case)."""
        if self.used or always:
            self.store.remove(self.prefix)
            self.used = False


class LogSync:
    """A log file that lives in a node's cache, copied to the store when the `with` block starts, every `period`
    seconds while it grows, and once more when the block ends, so a node that is lost leaves its log (up to its last minute) where
    the driver and the user can read it. Object stores cannot append: each upload replaces the object with the
    whole file, which is fine for logs of a few hundred kB. An upload that fails is logged and tried again at the
    next period; it never stops the work being logged."""

    def __init__(self, store: RemoteStore, local: Path, key: str, period: float):
        self.store, self.local, self.key, self.period = store, local, key, period
        self._sent = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="log-sync", daemon=True)

    def __enter__(self) -> "LogSync":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.upload()

    def upload(self) -> None:
        """Copy the local file to the store if it grew since the last copy."""
        with contextlib.suppress(FileNotFoundError):
            size = self.local.stat().st_size
            if size != self._sent:
                try:
                    self.store.put_file(self.local, self.key, size)
                    self._sent = size
                except Exception as e:  # noqa: BLE001 - a log upload must not stop training
                    log.warning("could not upload the log %s to %s: %s", self.local, self.key, e)

    def _loop(self) -> None:
        self.upload()
        while not self._stop.wait(self.period):
            self.upload()


def open_remote(paths: Paths, progress: bool = False) -> RemoteStore | None:
    """The remote store of a work dir given as a URI (`paths.remote`), or None for a local work dir."""
    return RemoteStore(paths.remote, paths.work_dir, progress=progress) if paths.remote else None


def _create_local(path: Path, body: bytes) -> bool:
    """Exclusive create on a local filesystem: whole contents or nothing, and only one creator wins (a hard
    link fails if the name exists). fsspec's `mode="create"` checks, then writes a temp file and moves it into
    place, so two concurrent creators could both succeed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(body)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".stored")


def _identity(info: dict[str, Any]) -> str:
    """Which version of an object `info` (fsspec's info or find(detail=True) entry) describes."""
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{info.get('size')}:{version}"


@contextlib.contextmanager
def _bar(show: bool, size: int, desc: str) -> Iterator[Any]:
    """A tqdm progress callback for a large transfer, fsspec's no-op callback otherwise."""
    from fsspec.callbacks import DEFAULT_CALLBACK, TqdmCallback

    if not show or size < BAR_BYTES:
        yield DEFAULT_CALLBACK
        return
    callback = TqdmCallback(tqdm_kwargs={"desc": desc, "unit": "B", "unit_scale": True})
    try:
        yield callback
    finally:
        callback.close()
