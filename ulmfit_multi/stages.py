"""The stage engine: content-addressed, resumable, atomic stages.

A stage's fingerprint is a hash of its name, its version, the config sections
it reads, the identities of the input files it reads (`Stage.data`, supplied by an
`InputSource`: see inputs.py) and its upstream stages' fingerprints (a Merkle
chain: intermediate outputs are never rehashed). Layout under the work directory:

    store/<stage>/<fp12>/            finished output, immutable, with _stage.json
    store/<stage>/<fp12>.partial/    in progress (training checkpoints live here)
    runs/<recipe>-<preset>/          run.json, config.resolved.toml, NN-<stage> links

A stage whose `store/<stage>/<fp12>/` exists is done and skipped. Otherwise it
runs in `.partial/` (reusing what a crashed run left there, so training resumes
from its last checkpoint) and is renamed into place only on success.
With a work dir at an object-storage URI, this is the local cache, and each stage is
also fetched from and published to the remote store (objstore.py).
No ML code lives here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .atomic import atomic_write, replace_folder, write_json
from .config import Config, section
from .envinfo import environment
from .errors import StageError
from .objstore import PartialSync, RemoteStore, open_remote
from .paths import Paths
from .schema import to_toml
from .stage_inputs import DataIds, InputSource, adopt_legacy, same_folder, start_identities

log = logging.getLogger("ulmfit_multi")
META = "_stage.json"
EventHook = Callable[[dict[str, Any]], None]


def ignore_event(event: dict[str, Any]) -> None:
    """The default `StageContext.emit`: events go nowhere."""


def notify(on_event: EventHook | None, event: dict[str, Any]) -> None:
    """Call `on_event(event)` if there is one; an exception it raises is logged at debug level, never raised."""
    if on_event is None:
        return
    try:
        on_event(event)
    except Exception:
        log.debug("on_event callback failed on %s", event, exc_info=True)


@dataclass
class StageContext:
    """What a stage function sees: config, locations, its output dir and its inputs."""

    cfg: Config
    paths: Paths
    stage: str
    out: Path
    inputs: dict[str, Path]
    fingerprint: str
    # a stage reports its own events here (e.g. {"event": "epoch", ...}); run_stages adds "stage"
    emit: EventHook = field(default=ignore_event)
    run_dir: Path | None = None  # the run folder (run.json records how the run was started)
    partial_sync: PartialSync | None = None  # with a remote store: the stage's checkpoints there (objstore.py)

    @property
    def on_checkpoint(self) -> Callable[[Path], None] | None:
        """What a training stage calls with each checkpoint file it has written under `out` (None on a local
        work dir): with a remote store it is uploaded, so that a retry on another node resumes from it."""
        return self.partial_sync.upload if self.partial_sync else None

    def remote_dir(self, rel: str) -> str | None:
        """The URI of `out/rel` in the remote store, for state kept there while the stage runs (deleted once it
        is published); None on a local work dir."""
        return self.partial_sync.uri(rel) if self.partial_sync else None

    @property
    def progress(self) -> bool:
        """Whether to show progress bars."""
        return self.cfg.runtime.progress

    def input(self, name: str) -> Path:
        """The finished output directory of upstream stage `name`."""
        if name not in self.inputs:
            raise StageError(f"stage '{self.stage}' asked for '{name}', which is not one of its inputs")
        return self.inputs[name]


@dataclass
class Stage:
    """One named pipeline step: a function of a StageContext."""

    name: str
    fn: Callable[[StageContext], dict[str, Any] | None]
    reads: tuple[str, ...]
    after: tuple[str, ...] = ()
    version: int = 1
    still_valid: Callable[[Path], bool] | None = None  # e.g. fetched files still there
    # the groups of input files ("sources", "tasks") whose identities enter the fingerprint, or a function
    # of the config that names them (the corpus reads the task files only with corpus.task_text)
    data: tuple[str, ...] | Callable[[Config], tuple[str, ...]] = ()
    # a stage that brings the input files in (fetch): the stages after it get its fingerprint without its
    # file identities (each declares the files it reads in `data`), and the files are looked at again after it
    fetches: bool = False

    @property
    def doc(self) -> str:
        """First line of the stage function's docstring."""
        return (self.fn.__doc__ or self.name).strip().splitlines()[0]

    def data_groups(self, cfg: Config) -> tuple[str, ...]:
        """The input-file groups this stage reads under `cfg`."""
        return tuple(self.data(cfg)) if callable(self.data) else self.data


@dataclass
class StageResult:
    """What happened to one stage in a run."""

    name: str
    status: str  # "skipped" | "ran" | "running" | "failed" | "not run"
    fingerprint: str
    path: Path
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class RunResult:
    """The outcome of running a recipe's stages."""

    run_dir: Path
    stages: list[StageResult]

    def __getitem__(self, name: str) -> StageResult:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


def canonical_json(obj: Any) -> str:
    """Stable JSON used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stage_data(stage: Stage, cfg: Config, data: DataIds | None) -> DataIds:
    """The identities of the input files `stage` reads (only the groups that have any)."""
    return {g: data[g] for g in stage.data_groups(cfg) if data and data.get(g)}


def fingerprint(stage: Stage, cfg: Config, upstream: dict[str, str], data: DataIds | None = None) -> str:
    """sha256 over the stage name, version, the config it reads, its inputs' fingerprints and the identities
    of the input files it reads. With no such identities (every file pinned by a declared sha256 and
    present, or no `data` given) the payload is the one used before files were part of it."""
    payload = {
        "stage": stage.name,
        "version": stage.version,
        "config": {key: section(cfg, key, for_fingerprint=True) for key in stage.reads},
        "inputs": {name: upstream[name] for name in stage.after},
    }
    ids = stage_data(stage, cfg, data)
    if ids:
        payload["data"] = ids
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _fingerprints(stages: list[Stage], cfg: Config, data: DataIds | None) -> tuple[dict[str, str], dict[str, str]]:
    """Each stage's fingerprint (its store key) and the fingerprint the stages after it hash (the same, but
    without the file identities of a `fetches` stage)."""
    fps: dict[str, str] = {}
    chain: dict[str, str] = {}
    for st in stages:
        missing = [a for a in st.after if a not in fps]
        if missing:
            raise StageError(f"stage '{st.name}' depends on {missing}, which come later or don't exist")
        fps[st.name] = fingerprint(st, cfg, chain, data)
        chain[st.name] = fingerprint(st, cfg, chain) if st.fetches else fps[st.name]
    return fps, chain


def compute_fingerprints(stages: list[Stage], cfg: Config, data: DataIds | None = None) -> dict[str, str]:
    """Fingerprint of every stage, in order; `data` are the input files' identities (`InputSource.identities`)."""
    return _fingerprints(stages, cfg, data)[0]


def store_dir(paths: Paths, stage: str, fp: str) -> Path:
    """Where a finished stage output lives."""
    return paths.work_dir / "store" / stage / fp[:12]


def run_dir_for(paths: Paths, cfg: Config) -> Path:
    """The human-readable run folder of a recipe and preset (plus a short hash of any --set overrides)."""
    name = f"{cfg.recipe.name}-{cfg.preset}"
    if cfg.overrides:
        name += "-" + hashlib.sha256(canonical_json(cfg.overrides).encode()).hexdigest()[:8]
    return paths.work_dir / "runs" / name


def stage_status(stages: list[Stage], cfg: Config, paths: Paths, data: DataIds | None = None
                 ) -> list[tuple[str, str, str]]:
    """(stage, status, fp12) for each stage: done, partial or missing; with a remote store (a URI work dir)
    also "done (store)", "running (store)" or "partial (store)" for what the store holds and this cache lacks."""
    fps = compute_fingerprints(stages, cfg, data)
    remote = open_remote(paths)
    rows = []
    for st in stages:
        d = store_dir(paths, st.name, fps[st.name])
        status = "done" if d.exists() else "partial" if d.with_name(d.name + ".partial").exists() else "missing"
        if remote is not None and status != "done":
            there = remote.stage_state(st.name, fps[st.name])
            status = f"{there} (store)" if there and (status == "missing" or there != "partial") else status
        rows.append((st.name, status, fps[st.name][:12]))
    return rows


def select(stages: list[Stage], *, from_stage: str | None, only: str | None, until: str | None,
           force: bool) -> tuple[list[Stage], set[str]]:
    """Which stages to consider and which to force, from --from/--only/--until/--force."""
    names = [s.name for s in stages]
    for flag, value in (("--from", from_stage), ("--only", only), ("--until", until)):
        if value is not None and value not in names:
            raise StageError(f"{flag} {value!r}: no such stage; stages are {', '.join(names)}")
    if only is not None:
        if from_stage is not None or until is not None:
            raise StageError("--only runs one stage; it cannot be combined with --from or --until")
        return [s for s in stages if s.name == only], {only} if force else set()
    start = names.index(from_stage) if from_stage else 0
    stop = names.index(until) + 1 if until else len(names)
    if start >= stop:
        raise StageError(f"--from {from_stage!r} comes after --until {until!r}: nothing to run")
    chosen = stages[:stop]
    if from_stage:
        forced = set(names[start:stop])
    elif force:
        forced = set(names[:stop])
    else:
        forced = set()
    return chosen, forced


def run_stages(stages: list[Stage], cfg: Config, paths: Paths, *, from_stage: str | None = None,
               only: str | None = None, until: str | None = None, force: bool = False,
               on_event: EventHook | None = None, files: InputSource | None = None,
               invocation: dict[str, Any] | None = None) -> RunResult:
    """Run (or skip) the stages in order; returns what happened to each.

    on_event: called with {"event": "stage", "stage": name, "status": "skip" | "run" | "done" | "failed"}
    (plus "seconds" with "done", "error" with "failed") as each stage is skipped, starts, finishes or fails,
    and with every event a stage function sends through `ctx.emit` (with "stage" set to its name). An
    exception raised by on_event is logged at debug level and never stops the run.
    files: the input files, whose identities enter the fingerprints of the stages that declare `data`,
    looked at before the first stage and again after a `fetches` stage (which may download some); see
    stage_inputs.py for `--only` and for store folders made before identities were fingerprinted.
    invocation: how the run was started (recipe, preset, --set items, locations), recorded in run.json.
    """
    chosen, forced = select(stages, from_stage=from_stage, only=only, until=until, force=force)
    run_dir = run_dir_for(paths, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    recorded = only is not None and not next(s for s in stages if s.name == only).fetches  # see stage_inputs.py
    data = start_identities(files, run_dir, recorded)
    fps, chain = _fingerprints(stages, cfg, data)
    legacy = _fingerprints(stages, cfg, None)[0]
    with atomic_write(run_dir / "config.resolved.toml") as f:
        f.write(f"# resolved from {cfg.source_file}, preset {cfg.preset}\n")
        f.write(to_toml(cfg.to_dict()))
    record = {"inputs": data if files is not None else None, "invocation": invocation}
    results: list[StageResult] = []
    _write_run_json(run_dir, cfg, results, fps, **record)
    remote = open_remote(paths, progress=cfg.runtime.progress)  # None for a local work dir
    for index, st in enumerate(stages):
        if st not in chosen:
            continue
        fp = fps[st.name]
        done = store_dir(paths, st.name, fp)
        inputs = {}
        for dep in st.after:
            dep_dir = store_dir(paths, dep, fps[dep])
            if remote is not None and not dep_dir.exists():
                remote.fetch(dep, fps[dep], dep_dir)
            if not dep_dir.exists():
                raise StageError(
                    f"stage '{st.name}' needs '{dep}' ({fps[dep][:12]}), which has not been run: "
                    f"run `ulmfit-multi recipe {cfg.recipe.name} --preset {cfg.preset} --until {dep}` first")
            inputs[dep] = dep_dir
        label = f"[{index + 1:02d} {st.name}]"
        if st.name not in forced and files is not None and not done.exists():
            deps_same = all(chain[d] == legacy[d] or same_folder(store_dir(paths, d, fps[d]),
                                                                 store_dir(paths, d, legacy[d])) for d in st.after)
            if deps_same and adopt_legacy(store_dir(paths, st.name, legacy[st.name]), done, st.data_groups(cfg),
                                          files, META):
                log.info("%s reuse %s (made before input files were fingerprinted; its files are unchanged)",
                         label, legacy[st.name][:12])
        if remote is not None and st.name not in forced and not remote.fetch(st.name, fp, done) and done.exists():
            remote.publish(st.name, fp, done)  # complete here, never published (an upload cut short)
        valid = done.exists() and (st.still_valid is None or st.still_valid(done))
        if valid and st.name not in forced:
            log.info("%s skip %s", label, fp[:12])
            notify(on_event, {"event": "stage", "stage": st.name, "status": "skip"})
            results.append(StageResult(st.name, "skipped", fp, done, summary=_read_summary(done)))
            _link(run_dir, index, st.name, done)
        else:
            log.info("%s run %s", label, fp[:12])
            notify(on_event, {"event": "stage", "stage": st.name, "status": "run"})
            partial = done.with_name(done.name + ".partial")
            _write_run_json(run_dir, cfg, [*results, StageResult(st.name, "running", fp, partial)], fps, **record)
            try:
                result = _run_one(st, cfg, paths, fp, done, inputs, fresh=st.name in forced,
                                  emit=_stage_emitter(on_event, st.name), data=stage_data(st, cfg, data),
                                  run_dir=run_dir, remote=remote)
            except BaseException as e:  # record the failure in run.json, then let it propagate
                error = f"{type(e).__name__}: {e}"
                results.append(StageResult(st.name, "failed", fp, partial, error=error))
                _write_run_json(run_dir, cfg, results, fps, **record)
                if remote is not None:
                    with contextlib.suppress(Exception):
                        remote.upload_run(run_dir)
                notify(on_event, {"event": "stage", "stage": st.name, "status": "failed", "error": error})
                raise
            results.append(result)
            _link(run_dir, index, st.name, done)
            log.info("%s done in %.1fs", label, result.seconds)
            notify(on_event, {"event": "stage", "stage": st.name, "status": "done", "seconds": result.seconds})
        if st.fetches and files is not None and not recorded:
            # what fetch downloaded is there now: the later stages hash the files as they are after it
            data = record["inputs"] = files.identities()
            new_fps, new_chain = _fingerprints(stages, cfg, data)
            for later in stages[index + 1:]:
                fps[later.name], chain[later.name] = new_fps[later.name], new_chain[later.name]
        _write_run_json(run_dir, cfg, results, fps, **record)
    if remote is not None:
        remote.upload_run(run_dir)
        log.info("remote store %s", remote.summary())
    return RunResult(run_dir, results)


def _stage_emitter(on_event: EventHook | None, stage: str) -> EventHook:
    if on_event is None:
        return ignore_event
    return lambda event: notify(on_event, {**event, "stage": stage})


def _run_one(st: Stage, cfg: Config, paths: Paths, fp: str, done: Path, inputs: dict[str, Path], fresh: bool,
             emit: EventHook, data: DataIds, run_dir: Path, remote: RemoteStore | None = None) -> StageResult:
    with stage_lock(done):
        if remote is None:
            return _run_locked(st, cfg, paths, fp, done, inputs, fresh, emit, data, run_dir)
        # on a remote store: under the stage's lease, then published (see objstore.py)
        with remote.claim(st.name, fp, force=fresh) as held:
            if not held:  # another runner completed it while this one waited for the lease
                remote.fetch(st.name, fp, done)
                return StageResult(st.name, "skipped", fp, done, summary=_read_summary(done))
            # the checkpoints a lost try uploaded (objstore.PartialSync): resumed from, unless rerun from scratch
            sync = remote.partial_sync(st.name, fp, done.with_name(done.name + ".partial"))
            if fresh:
                sync.clear(always=True)
            elif pulled := sync.pull():
                log.info("downloaded %s's checkpoints from the store: %s", st.name, ", ".join(pulled))
            result = _run_locked(st, cfg, paths, fp, done, inputs, fresh, emit, data, run_dir, sync)
            won = remote.publish(st.name, fp, done, replace=fresh)
            sync.clear()
            if not won:
                remote.fetch(st.name, fp, done)  # another runner's copy is the store's: use that one here too
            return result


@contextlib.contextmanager
def stage_lock(done: Path):
    """One writer per stage output: a `<fp12>.lock` file holding host and pid.

    A lock left by a dead process on this host is taken over; one from another host is reported
    (remove the file if that run is gone).
    """
    lock = done.with_name(done.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = lock.read_text(encoding="utf-8").strip() if lock.exists() else ""
            host, _, pid = owner.partition(":")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                lock.unlink(missing_ok=True)
                continue
            raise StageError(f"{done}: another run ({owner or 'unknown'}) is working on this stage; "
                             f"wait for it, or delete {lock} if that run is gone") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_locked(st: Stage, cfg: Config, paths: Paths, fp: str, done: Path, inputs: dict[str, Path],
                fresh: bool, emit: EventHook, data: DataIds, run_dir: Path | None = None,
                sync: PartialSync | None = None) -> StageResult:
    partial = done.with_name(done.name + ".partial")
    if fresh and partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(cfg=cfg, paths=paths, stage=st.name, out=partial, inputs=inputs, fingerprint=fp,
                       emit=emit, run_dir=run_dir, partial_sync=sync)
    started = time.time()
    summary = st.fn(ctx) or {}
    seconds = time.time() - started
    meta = {
        "stage": st.name,
        "fingerprint": fp,
        "version": st.version,
        "recipe": cfg.recipe.name,
        "preset": cfg.preset,
        "config": {key: section(cfg, key) for key in st.reads},
        "inputs": {name: {"fingerprint": store_path.name, "path": str(store_path)} for name, store_path in inputs.items()},
        "data": data,  # the identities of the input files it read (see inputs.py)
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(seconds, 3),
        "summary": summary,
        "outputs": _list_outputs(partial),
        "environment": environment(),
    }
    write_json(partial / META, meta)
    # done may be a symlink: a store folder adopted from an older version
    replace_folder(partial, done, done.with_name(done.name + ".old"))
    return StageResult(st.name, "ran", fp, done, seconds=seconds, summary=summary)


def _read_summary(done: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((done / META).read_text(encoding="utf-8")).get("summary", {})
    return {}


def _list_outputs(directory: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != META and "ckpt" not in p.parts:
            out.append({"path": str(p.relative_to(directory)), "bytes": p.stat().st_size})
    return out


def _link(run_dir: Path, index: int, name: str, target: Path) -> None:
    link = run_dir / f"{index + 1:02d}-{name}"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    rel = os.path.relpath(target, run_dir)
    try:
        link.symlink_to(rel, target_is_directory=True)
    except OSError:  # filesystems without symlinks: record the path instead
        link.with_suffix(".path").write_text(str(target), encoding="utf-8")


def _write_run_json(run_dir: Path, cfg: Config, results: list[StageResult], fps: dict[str, str], *,
                    inputs: DataIds | None = None, invocation: dict[str, Any] | None = None) -> None:
    """run.json: every stage the run folder has reached with the current fingerprints (this invocation's
    results over earlier ones, in stage order), so a stage's output is found by name (`runfolder.RunFolder`);
    the input files' identities the fingerprints were made with, and how the run was started."""
    entries: dict[str, dict[str, Any]] = {}
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        previous = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        entries = {e["name"]: e for e in previous["stages"]}
    for r in results:
        entries[r.name] = {"name": r.name, "status": r.status, "fingerprint": r.fingerprint[:12], "path": str(r.path),
                           "seconds": round(r.seconds, 3), **({"error": r.error} if r.error else {})}
    write_json(run_dir / "run.json", {
        "recipe": cfg.recipe.name,
        "preset": cfg.preset,
        "source_file": cfg.source_file,
        "stages": [entries[n] for n, fp in fps.items() if n in entries and entries[n]["fingerprint"] == fp[:12]],
        "environment": environment(),
        **({"inputs": inputs} if inputs is not None else {}),
        "invocation": invocation if invocation is not None else previous.get("invocation"),
    })
