"""Pretrain several languages at once on Ray, with live progress from the stage engine's events.

    ulmfit-multi pretrain --langs mr,hi,ta --preset smoke --mirror ../shared/data --gpus-per-lang 0

`pretrain_many` submits one Ray task per language. Each task calls the same stage engine as the
single-language CLI (`run_recipe(lang, until="pretrain")`), so a retried task (lost node, crash, an
exception) re-enters the engine: finished stages are skipped and training resumes from
`store/pretrain/<fp12>.partial/<direction>/ckpt/last.pt`. That works when `work_dir` is on storage every
node sees (NFS, a shared volume) or is an object-storage URI (`s3://bucket/prefix`: each node works in its own
cache, and the checkpoints of a running stage are uploaded as they are written; objstore.py); see
docs/CLUSTER.md.

Ray is imported only inside functions, so the rest of the package never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .ddp import ray_session
from .paths import Paths, is_uri

log = logging.getLogger("ulmfit_multi")

STATUS_PERIOD_S = 30.0
LOG_UPLOAD_PERIOD_S = 60.0  # how often a try's log is copied to an object-storage work dir  # how often the driver prints a "running: ..." line when nothing changed
RUN_KEYS = ("task", "direction", "seed")  # what tells the models a stage trains apart, in its epoch events


# ------------------------------------------------------------------ summaries and the final table


def summarize_result(lang: str, result: Any) -> dict[str, Any]:
    """valid_ppl per direction (pretrain summary), LM tokens (encode summary) and each stage's status.

    `result` is a RunResult (anything with `.stages`, each with `.name` and `.summary`) or a dict that
    already holds "valid_ppl"/"tokens" (stand-in runners).
    """
    if isinstance(result, dict):
        return {"valid_ppl": dict(result.get("valid_ppl") or {}), "tokens": result.get("tokens"),
                "stages": dict(result.get("stages") or {})}
    stages = {s.name: s for s in getattr(result, "stages", [])}
    pre = stages["pretrain"].summary if "pretrain" in stages else {}
    enc = stages["encode"].summary if "encode" in stages else {}
    ppl = {d: float(v["valid_ppl"]) for d, v in (pre or {}).items()
           if isinstance(v, dict) and v.get("valid_ppl") is not None}
    lm = (enc or {}).get("lm") or {}
    table = {name: {"status": st.status, "seconds": round(float(st.seconds), 1),
                    "fingerprint": str(getattr(st, "fingerprint", ""))[:12]} for name, st in stages.items()}
    return {"valid_ppl": ppl, "tokens": lm.get("tokens"), "stages": table}


def lang_summary(lang: str, *, status: str, error: str = "", node: str = "", attempts: int = 0,
                 seconds: float = 0.0, valid_ppl: dict[str, float] | None = None,
                 tokens: int | None = None, stages: dict[str, Any] | None = None) -> dict[str, Any]:
    """One language's entry in pretrain_many's result list."""
    return {"lang": lang, "status": status, "error": error, "node": node, "attempts": attempts,
            "seconds": round(float(seconds), 1), "stages": dict(stages or {}), "valid_ppl": dict(valid_ppl or {}),
            "tokens": tokens}


def error_text(exc: BaseException) -> str:
    """A one-line reason: the task's own exception for RayTaskError, else the Ray error's name."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def format_table(summaries: list[dict[str, Any]]) -> str:
    """The final table: lang, status, node, tries, valid ppl fwd/bwd, tokens, seconds (+ errors below)."""
    def ppl(s: dict, d: str) -> str:
        v = (s.get("valid_ppl") or {}).get(d)
        return f"{v:.1f}" if isinstance(v, (int, float)) else "-"

    header = ["lang", "status", "node", "tries", "ppl fwd", "ppl bwd", "tokens", "seconds"]
    rows = [[s["lang"], s["status"], (s.get("node") or "-")[:12], str(s.get("attempts") or "-"),
             ppl(s, "fwd"), ppl(s, "bwd"), f"{s['tokens']:,}" if isinstance(s.get("tokens"), int) else "-",
             f"{s.get('seconds', 0):.1f}"] for s in summaries]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    out += [f"{s['lang']}: {s['error']}" for s in summaries if s["status"] != "ok" and s.get("error")]
    return "\n".join(out)


# ------------------------------------------------------------------ the progress board (a Ray actor)


class ProgressBoard:
    """Per-language state that tasks update (node, try, current stage, epoch progress); the driver polls it.

    Tasks send the stage engine's events (`run_stages(on_event=...)`) through `event`: stage events set the
    current stage, epoch events (`{"event": "epoch", "epoch": i, "epochs_total": n, "tokens_per_second": ...,
    "valid_ppl": ...}`) the epoch count, tokens/s, valid perplexity and an ETA for the training run.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.clock = clock

    def started(self, lang: str, node: str, host: str, pid: int) -> dict[str, Any] | None:
        """A try begins; returns the previous try's record (None on the first try)."""
        prev = dict(self.state[lang]) if lang in self.state else None
        now = self.clock()
        first = prev["first_start"] if prev else now
        self.state[lang] = {"node": node, "host": host, "pid": pid, "attempts": (prev or {}).get("attempts", 0) + 1,
                            "stage": "starting", "first_start": first, "since": now}
        return prev

    def event(self, lang: str, event: dict[str, Any]) -> None:
        """One event of a language's run: "stage" events go to `stage`, "epoch" events to `epoch`; others are
        ignored. A stage that is skipped, done or failed shows as e.g. 'fetch skip'."""
        kind = event.get("event")
        if kind == "stage":
            name, status = str(event.get("stage", "?")), event.get("status")
            self.stage(lang, name if status == "run" else f"{name} {status}")
        elif kind == "epoch":
            self.epoch(lang, event)

    def stage(self, lang: str, stage: str) -> None:
        """The language's current stage; clears the previous stage's epoch progress."""
        if lang in self.state:
            now = self.clock()
            self.state[lang].update(stage=stage, stage_since=now, epochs_done=0, epochs_total=None, tok_s=None,
                                    valid_ppl=None, eta_s=None, run_since=now, run_epochs=0, last_epoch=None,
                                    last_epoch_at=now, run="")

    def epoch(self, lang: str, event: dict[str, Any]) -> None:
        """A training epoch finished: epochs done (`epoch` + 1) of `epochs_total`, tokens/s, valid ppl, ETA.

        The ETA is (epochs left) x (mean time of the epochs seen in this training run). A stage that trains
        several models one after the other (directions, tasks, seeds) starts a new run when the event's
        task/direction/seed differ from the previous one's, or when its epoch index is not above the previous.
        """
        st = self.state.get(lang)
        if st is None:
            return
        now = self.clock()
        last = st.get("last_epoch")
        epoch = event.get("epoch")
        epoch = int(epoch) if isinstance(epoch, (int, float)) else (last + 1 if last is not None else 0)
        run = "/".join(f"seed{event[k]}" if k == "seed" else str(event[k]) for k in RUN_KEYS if k in event)
        if last is not None and (epoch <= last or run != st.get("run", "")):
            st.update(run_since=st.get("last_epoch_at", now), run_epochs=0)
        run_epochs = st.get("run_epochs", 0) + 1
        per_epoch = (now - st.get("run_since", st.get("stage_since", st["since"]))) / run_epochs
        total = event.get("epochs_total")
        st.update(epochs_done=epoch + 1, epochs_total=total, tok_s=event.get("tokens_per_second"),
                  valid_ppl=event.get("valid_ppl"), run_epochs=run_epochs, last_epoch=epoch, last_epoch_at=now, run=run,
                  eta_s=max(0.0, (total - epoch - 1) * per_epoch) if isinstance(total, (int, float)) else None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every language's state."""
        return self.state


def board_forwarder(board: Any, lang: str) -> Callable[[dict[str, Any]], None]:
    """The `on_event` callback a task gives its runner: each event goes to the board actor's `event`
    (fire and forget); a failure to send is logged at debug level, never raised."""
    def forward(event: dict[str, Any]) -> None:
        try:
            board.event.remote(lang, dict(event))
        except Exception:
            log.debug("could not send %s's event %s to the progress board", lang, event, exc_info=True)

    return forward


def progress_line(lang: str, st: dict[str, Any]) -> str:
    """One live line: '[mr] pretrain on 3f2a.. (try 2), fwd epoch 1/4, 12,345 tok/s, ETA 40s'."""
    parts = [f"[{lang}] {st.get('stage', '?')} on {str(st.get('node', ''))[:12]}"]
    if st.get("attempts", 1) > 1:
        parts[0] += f" (try {st['attempts']})"
    if st.get("epochs_done"):
        total = st.get("epochs_total")
        epochs = f"epoch {st['epochs_done']}/{total}" if total else f"epoch {st['epochs_done']}"
        parts.append(f"{st['run']} {epochs}" if st.get("run") else epochs)
    if isinstance(st.get("tok_s"), (int, float)):
        parts.append(f"{st['tok_s']:,.0f} tok/s")
    if isinstance(st.get("valid_ppl"), (int, float)):
        parts.append(f"valid ppl {st['valid_ppl']:.1f}")
    if isinstance(st.get("eta_s"), (int, float)):
        parts.append(f"ETA {st['eta_s']:.0f}s")
    return ", ".join(parts)


def collect(lang: str, outcome: Any, st: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The summary of one finished task: `outcome` is what ray.get returned, or the exception it raised."""
    if isinstance(outcome, BaseException):
        return lang_summary(lang, status="failed", error=error_text(outcome), node=st.get("node", ""),
                            attempts=st.get("attempts", 0), seconds=seconds)
    return lang_summary(lang, status="ok", node=outcome.get("node", ""), attempts=st.get("attempts", 1),
                        seconds=seconds, valid_ppl=outcome.get("valid_ppl"), tokens=outcome.get("tokens"),
                        stages=outcome.get("stages"))


def clear_stale_locks(work_dir: Path, owner: str) -> list[Path]:
    """Remove stage lock files written by `owner` ('host:pid', a try that is known to be over).

    The stage engine takes over a dead process's lock only on the same host; a try lost with its
    node leaves a lock that names another host, which would block the retry.
    """
    removed = []
    for lock in (work_dir / "store").glob("*/*.lock"):
        try:
            if lock.read_text(encoding="utf-8").strip() == owner:
                lock.unlink()
                removed.append(lock)
        except OSError:
            pass
    return removed


def clear_lost_try(work_dir: str, prev: dict[str, Any] | None, host: str) -> list[str]:
    """What a try that is known to be over (`prev`: the board's record of it) may have left holding a stage.

    A local (shared) work dir: its lock files, when it ran on another host (`clear_stale_locks`). An
    object-storage work dir: its leases in the store (`RemoteStore.release_leases`), whichever host it ran on,
    so the retry need not wait for them to expire; its lock files are in its own node's cache, where the engine
    takes over a dead process's lock by itself. Returns what was removed."""
    if not prev:
        return []
    if is_uri(work_dir):
        from .objstore import open_remote

        store = open_remote(Paths.resolve(work_dir=work_dir))
        return store.release_leases(prev["host"], prev["pid"]) if store else []
    if prev.get("host") == host:
        return []
    return [str(p) for p in clear_stale_locks(Path(work_dir), f"{prev['host']}:{prev['pid']}")]


def _run_language(lang: str, runner: Callable | None, kwargs: dict[str, Any], board: Any,
                  work_dir: str) -> dict[str, Any]:
    """Body of the per-language Ray task (a retry runs it again from the top). The log goes to `logs/<lang>.log`
    of the work dir; with a URI work dir, that is this node's cache, copied to the store's
    `logs/<lang>.try<n>.<host>.log` as it grows (objstore.LogSync)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    host, pid = socket.gethostname(), os.getpid()
    prev = ray.get(board.started.remote(lang, node, host, pid))
    attempt = (prev or {}).get("attempts", 0) + 1
    paths = Paths.resolve(work_dir=work_dir)
    logs = paths.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{lang}.log"
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    pkg_log = logging.getLogger("ulmfit_multi")
    old_level = pkg_log.level
    pkg_log.setLevel(logging.INFO)
    pkg_log.addHandler(file_handler)
    uploading = contextlib.nullcontext()
    if paths.remote:  # no shared disk: the log goes to the store too, one object per try
        from .objstore import open_remote

        store = open_remote(paths)
        if store is not None:
            uploading = store.log_sync(log_file, f"{lang}.try{attempt}.{host}.log", LOG_UPLOAD_PERIOD_S)
    try:
        log.info("=== %s: try %d on node %s (%s, pid %d)", lang, attempt, node[:12], host, pid)
        for held in clear_lost_try(work_dir, prev, host):
            log.info("removed %s of the lost try on %s (pid %s)", held, prev["host"], prev["pid"])
        if runner is None:
            from .pipeline import run_recipe as runner
        started = time.time()
        with uploading:
            try:
                result = runner(lang, **kwargs, on_event=board_forwarder(board, lang))
            except BaseException as e:
                log.error("%s failed on try %d: %s: %s", lang, attempt, type(e).__name__, e)
                raise
            out = summarize_result(lang, result)
            log.info("=== %s: finished in %.1fs, valid ppl %s, %s tokens", lang, time.time() - started,
                     out["valid_ppl"], out["tokens"])
        return {**out, "node": node}
    finally:
        pkg_log.removeHandler(file_handler)
        file_handler.close()
        pkg_log.setLevel(old_level)


# ------------------------------------------------------------------ pretrain_many


def pretrain_many(langs: list[str], *, preset: str = "smoke", overrides: list[str] | dict | None = None,
                  mirror: str | Path | None = None, data_dir: str | Path | None = None,
                  work_dir: str | Path | None = None, address: str | None = None, gpus_per_lang: float = 1.0,
                  max_retries: int = 2, until: str = "pretrain", runner: Callable | None = None,
                  num_cpus: int | None = None, echo: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run `runner(lang, until=...)` for each language as its own Ray task; one summary dict per language.

    address: join that Ray cluster (or "auto"); None starts a local Ray (no dashboard, `num_cpus` CPUs,
    default one per language, plus the DDP workers) and shuts it down at the end. An already initialized
    Ray is reused.
    gpus_per_lang: GPUs reserved per language when the cluster has any (0 otherwise). N > 1 sets
    `pretrain.workers=N`: the language's LM trains data-parallel on N Ray Train workers (one GPU each, or
    one CPU each on a cluster without GPUs); its other stages run on one CPU.
    max_retries: Ray retries of a task after an exception or a lost worker/node.
    runner: default `ulmfit_multi.pipeline.run_recipe`; must be picklable (a module-level function).
    echo: where live lines and the final table go (default print).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    say = echo or (lambda s: print(s, flush=True))
    langs = list(dict.fromkeys(langs))
    if not langs:
        raise ValueError("pretrain_many: no languages given")
    # resolved here, on the driver: relative paths mean nothing on another node; a URI work dir stays one
    # (each task works in its own node's cache: $ULMFIT_MULTI_WORK_CACHE there, or the default)
    paths = Paths.resolve(data_dir, mirror, work_dir)
    work = paths.remote or str(paths.work_dir)
    if gpus_per_lang > 1:
        overrides = _with_override(overrides, "pretrain.workers", int(gpus_per_lang))
    mirror_for_tasks = paths.mirror_remote or (str(paths.mirror) if paths.mirror else None)  # a URI: per node
    kwargs = {"preset": preset, "overrides": overrides, "mirror": mirror_for_tasks,
              "data_dir": str(paths.data_dir), "work_dir": work, "until": until,
              "progress": False}
    per_lang = 1 + (int(gpus_per_lang) if gpus_per_lang > 1 else 0)  # the language's task + its DDP workers
    t0 = time.time()
    with ray_session(address, num_cpus=num_cpus or len(langs) * per_lang):
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        # > 1: the language's task reserves nothing itself; its pretrain stage starts that many Ray Train
        # workers (DDP), each with one GPU (or one CPU on a cluster without GPUs)
        num_gpus = float(gpus_per_lang) if has_gpu and gpus_per_lang <= 1 else 0.0
        here = ray.get_runtime_context().get_node_id()
        board = ray.remote(num_cpus=0)(ProgressBoard).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        task = ray.remote(_run_language).options(num_gpus=num_gpus, max_retries=max_retries,
                                                 retry_exceptions=True, name="pretrain")
        pending = {task.remote(lang, runner, kwargs, board, work): lang for lang in langs}
        say(f"pretrain_many: {len(langs)} languages ({', '.join(langs)}), preset {preset}, "
            f"{num_gpus:g} GPU(s) each, up to {max_retries} retries, work dir {work}")
        results: dict[str, dict[str, Any]] = {}
        seen: dict[str, tuple] = {}
        last_status = time.time()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            snap = _snapshot(board)
            for ref in ready:
                lang = pending.pop(ref)
                st = snap.get(lang, {})
                seconds = time.time() - st.get("first_start", t0)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # RayTaskError, WorkerCrashedError, NodeDiedError, ...
                    outcome = e
                results[lang] = r = collect(lang, outcome, st, seconds)
                if r["status"] == "ok":
                    ppl = " ".join(f"{d} {v:.1f}" for d, v in r["valid_ppl"].items())
                    say(f"[{lang}] ok after {seconds:.0f}s on {r['node'][:12]} (try {r['attempts']})"
                        + (f", valid ppl {ppl}" if ppl else ""))
                else:
                    say(f"[{lang}] FAILED after {r['attempts']} tries: {r['error']}")
            changed = False
            for lang in pending.values():
                st = snap.get(lang)
                if st is None:
                    continue
                key = (st["node"], st["attempts"], st["stage"], st.get("run"), st.get("epochs_done"))
                if seen.get(lang) != key:
                    seen[lang] = key
                    changed = True
                    say(progress_line(lang, st))
            if pending and not changed and time.time() - last_status > STATUS_PERIOD_S:
                say("running: " + ", ".join(f"{lg} ({snap.get(lg, {}).get('stage', 'queued')})"
                                            for lg in pending.values()) + f" [{time.time() - t0:.0f}s]")
                last_status = time.time()
            elif changed:
                last_status = time.time()
        summaries = [results[lang] for lang in langs]
        say(format_table(summaries))
        logs = f"{paths.remote}/logs/ (<lang>.try<n>.<host>.log)" if paths.remote else paths.work_dir / "logs"
        say(f"wall time {time.time() - t0:.1f}s; logs in {logs}")
        return summaries


def _snapshot(board: Any) -> dict[str, dict[str, Any]]:
    import ray

    try:
        return ray.get(board.snapshot.remote(), timeout=10)
    except Exception:
        return {}


# ------------------------------------------------------------------ data-parallel LM loop (Ray Train)


def _with_override(overrides: list[str] | dict | None, key: str, value: Any) -> list[str] | dict:
    if isinstance(overrides, dict):
        out = dict(overrides)
        section, name = key.split(".")
        out[section] = {**out.get(section, {}), name: value}
        return out
    return [*(overrides or []), f"{key}={value}"]


if __name__ == "__main__":  # python -m ulmfit_multi.distributed mr hi ta
    pretrain_many(sys.argv[1:] or ["mr"], gpus_per_lang=0)
