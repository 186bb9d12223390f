"""pretrain_many on Ray: result collection and the table (fast), and on a local multi-node Ray cluster (slow):
spreading languages over nodes, retrying a language on another node after its node is killed (resuming
from its checkpoint), reporting a permanently failing language while the others finish. Data-parallel
pretraining: tests/test_train_ddp.py (gloo ranks) and tests/test_pipeline.py (-m slow, Ray Train).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from ulmfit_multi.distributed import (
    ProgressBoard,
    board_forwarder,
    clear_stale_locks,
    collect,
    error_text,
    format_table,
    lang_summary,
    progress_line,
    summarize_result,
)
from ulmfit_multi.stages import RunResult, StageResult

# ------------------------------------------------------------------ a stand-in for run_recipe


def fake_runner(lang, *, preset, overrides, mirror, data_dir, work_dir, until, progress, on_event=None):
    """Counts `steps` steps, checkpointing each one to <work_dir>/ckpt/<lang>.json; resumes from it.

    overrides: {"steps": n, "step_seconds": s, "fail": [langs that always raise]}.
    Every try appends {node, start_step} to <work_dir>/tries/<lang>.jsonl. Reports through `on_event` as
    run_recipe does: the pretrain stage starting (and failing), and each step as an epoch of `steps`.
    """
    import ray

    emit = on_event or (lambda event: None)

    o = overrides or {}
    work = Path(work_dir)
    node = ray.get_runtime_context().get_node_id()
    ckpt = work / "ckpt" / f"{lang}.json"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    (work / "tries").mkdir(exist_ok=True)
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    with open(work / "tries" / f"{lang}.jsonl", "a") as f:
        f.write(json.dumps({"node": node, "start_step": step, "pid": os.getpid()}) + "\n")
    emit({"event": "stage", "stage": "pretrain", "status": "run"})
    if lang in o.get("fail", []):
        emit({"event": "stage", "stage": "pretrain", "status": "failed", "error": "RuntimeError: broken"})
        raise RuntimeError(f"corpus for {lang} is broken")
    while step < o.get("steps", 4):
        time.sleep(o.get("step_seconds", 0.2))
        step += 1
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step, "node": node}))
        os.replace(tmp, ckpt)
        emit({"event": "epoch", "stage": "pretrain", "epoch": step - 1, "epochs_total": o.get("steps", 4),
              "tokens_per_second": 1000.0, "valid_ppl": 100.0 - step})
    emit({"event": "stage", "stage": "pretrain", "status": "done", "seconds": 1.0})
    return RunResult(work, [
        StageResult("encode", "ran", "e" * 64, work, summary={"lm": {"tokens": 1000 + len(lang)}}),
        StageResult("pretrain", "ran", "p" * 64, work, summary={"fwd": {"valid_ppl": 100.0}, "bwd": {"valid_ppl": 120.5}}),
    ])


# ------------------------------------------------------------------ fast: no Ray


def test_summaries_and_table():
    result = RunResult(Path("."), [
        StageResult("fetch", "skipped", "f" * 64, Path(".")),
        StageResult("encode", "skipped", "e" * 64, Path("."), summary={"lm": {"tokens": 402140}}),
        StageResult("pretrain", "ran", "p" * 64, Path("."),
                    summary={"fwd": {"valid_ppl": 596.83, "steps": 3}, "bwd": {"valid_ppl": 548.93}}),
    ])
    got = summarize_result("mr", result)
    assert got == {"valid_ppl": {"fwd": 596.83, "bwd": 548.93}, "tokens": 402140, "stages": {
        "fetch": {"status": "skipped", "seconds": 0.0, "fingerprint": "f" * 12},
        "encode": {"status": "skipped", "seconds": 0.0, "fingerprint": "e" * 12},
        "pretrain": {"status": "ran", "seconds": 0.0, "fingerprint": "p" * 12}}}
    assert summarize_result("x", {"valid_ppl": {"fwd": 2.0}, "tokens": 5}) == {
        "valid_ppl": {"fwd": 2.0}, "tokens": 5, "stages": {}}
    assert summarize_result("x", RunResult(Path("."), [])) == {"valid_ppl": {}, "tokens": None, "stages": {}}

    ok = lang_summary("mr", status="ok", node="a" * 56, attempts=1, seconds=12.34, **got)
    bad = lang_summary("ta", status="failed", error="RuntimeError: boom", node="b" * 56, attempts=3, seconds=2)
    assert set(ok) == {"lang", "status", "error", "node", "attempts", "seconds", "stages", "valid_ppl", "tokens"}
    assert ok["stages"]["pretrain"]["status"] == "ran" and bad["stages"] == {}
    assert ok["seconds"] == 12.3
    table = format_table([ok, bad])
    lines = table.splitlines()
    assert lines[0].split() == ["lang", "status", "node", "tries", "ppl", "fwd", "ppl", "bwd", "tokens", "seconds"]
    assert lines[2].split() == ["mr", "ok", "a" * 12, "1", "596.8", "548.9", "402,140", "12.3"]
    assert lines[3].split() == ["ta", "failed", "b" * 12, "3", "-", "-", "-", "2.0"]
    assert lines[-1] == "ta: RuntimeError: boom"


def test_error_text_and_board(tmp_path):
    class Wrapped(Exception):
        def __init__(self, cause):
            super().__init__("ray.exceptions.RayTaskError(...) long traceback")
            self.cause = cause

    assert error_text(Wrapped(ValueError("bad corpus\nmore"))) == "ValueError: bad corpus"
    assert error_text(KeyError("x")) == "KeyError: 'x'"

    board = ProgressBoard()
    assert board.started("mr", "n1", "h1", 11) is None
    board.stage("mr", "pretrain")
    prev = board.started("mr", "n2", "h2", 22)
    assert prev["node"] == "n1" and prev["stage"] == "pretrain" and prev["attempts"] == 1
    assert board.snapshot()["mr"]["attempts"] == 2 and board.snapshot()["mr"]["node"] == "n2"

    locks = tmp_path / "store" / "pretrain"
    locks.mkdir(parents=True)
    (locks / "abc.lock").write_text("h1:11")
    (locks / "def.lock").write_text("h3:33")
    assert clear_stale_locks(tmp_path, "h1:11") == [locks / "abc.lock"]
    assert (locks / "def.lock").exists()


def test_collect_and_progress_lines():
    # what the driver makes of ray.get's value or exception, with the board's state of that language
    st = {"node": "n" * 56, "attempts": 2}
    ok = collect("mr", {"node": "m" * 56, "valid_ppl": {"fwd": 3.5}, "tokens": 7, "stages": {"pretrain": {}}},
                 st, 9.96)
    assert (ok["status"], ok["node"], ok["attempts"], ok["seconds"], ok["tokens"]) == ("ok", "m" * 56, 2, 10.0, 7)
    assert ok["valid_ppl"] == {"fwd": 3.5} and ok["stages"] == {"pretrain": {}}
    bad = collect("ta", RuntimeError("no corpus\ntraceback"), st, 1.0)
    assert (bad["status"], bad["error"], bad["node"], bad["attempts"]) == ("failed", "RuntimeError: no corpus",
                                                                          "n" * 56, 2)
    assert collect("kn", ValueError("x"), {}, 0)["attempts"] == 0  # never started (e.g. lost before a try)

    # the board: epoch events give tokens/s and an ETA; a new stage resets them
    now = [100.0]
    board = ProgressBoard(clock=lambda: now[0])
    board.started("mr", "a" * 56, "h", 1)
    board.event("mr", {"event": "stage", "stage": "pretrain", "status": "run"})
    now[0] += 10  # the first epoch took 10 s
    board.event("mr", {"event": "epoch", "stage": "pretrain", "epoch": 0, "epochs_total": 4,
                       "tokens_per_second": 1234.4, "valid_ppl": 500.0})
    snap = board.snapshot()["mr"]
    assert snap["epochs_done"] == 1 and snap["eta_s"] == pytest.approx(30.0)
    line = progress_line("mr", snap)
    assert line == "[mr] pretrain on aaaaaaaaaaaa, epoch 1/4, 1,234 tok/s, valid ppl 500.0, ETA 30s"
    board.started("mr", "b" * 56, "h2", 2)
    board.event("mr", {"event": "stage", "stage": "pretrain", "status": "run"})
    assert progress_line("mr", board.snapshot()["mr"]) == "[mr] pretrain on bbbbbbbbbbbb (try 2)"


def test_board_follows_stage_and_epoch_events():
    now = [0.0]
    board = ProgressBoard(clock=lambda: now[0])
    board.event("hi", {"event": "stage", "stage": "fetch", "status": "skip"})  # before its try started: ignored
    assert board.snapshot() == {}
    board.started("hi", "n" * 56, "h", 1)
    board.event("hi", {"event": "stage", "stage": "fetch", "status": "skip"})
    assert board.snapshot()["hi"]["stage"] == "fetch skip"
    board.event("hi", {"event": "stage", "stage": "pretrain", "status": "run"})
    assert board.snapshot()["hi"]["stage"] == "pretrain"

    # a resumed training run: its first event is epoch 2 of 4, after 6 s; the ETA counts epochs seen, not index
    now[0] = 6.0
    board.event("hi", {"event": "epoch", "stage": "pretrain", "epoch": 2, "epochs_total": 4,
                       "tokens_per_second": 50.0, "valid_ppl": 9.0})
    st = board.snapshot()["hi"]
    assert (st["epochs_done"], st["epochs_total"], st["tok_s"], st["valid_ppl"]) == (3, 4, 50.0, 9.0)
    assert st["eta_s"] == pytest.approx(6.0)
    now[0] = 10.0
    board.event("hi", {"event": "epoch", "stage": "pretrain", "epoch": 3, "epochs_total": 4})
    st = board.snapshot()["hi"]
    assert st["epochs_done"] == 4 and st["eta_s"] == 0.0 and st["tok_s"] is None
    # the next model of the stage starts again at epoch 0: its own epoch clock
    now[0] = 13.0
    board.event("hi", {"event": "epoch", "stage": "pretrain", "epoch": 0, "epochs_total": 2})
    st = board.snapshot()["hi"]
    assert st["epochs_done"] == 1 and st["eta_s"] == pytest.approx(3.0)
    assert progress_line("hi", st).endswith(", epoch 1/2, ETA 3s")
    # the pipeline's events name the model (task, direction, seed): a new one starts a new run even when it
    # resumes at a later epoch index, and the live line names it
    now[0] = 15.0
    board.event("hi", {"event": "epoch", "stage": "pretrain", "direction": "bwd", "epoch": 3, "epochs_total": 5})
    st = board.snapshot()["hi"]
    assert st["epochs_done"] == 4 and st["eta_s"] == pytest.approx(2.0)
    assert progress_line("hi", st) == "[hi] pretrain on nnnnnnnnnnnn, bwd epoch 4/5, ETA 2s"
    board.event("hi", {"event": "stage", "stage": "classifier", "status": "run"})
    board.event("hi", {"event": "epoch", "stage": "classifier", "task": "t1", "direction": "fwd", "seed": 0,
                       "epoch": 0, "epochs_total": 2, "valid_score": 0.5})
    assert board.snapshot()["hi"]["run"] == "t1/fwd/seed0"

    board.event("hi", {"event": "stage", "stage": "pretrain", "status": "failed", "error": "RuntimeError: x"})
    st = board.snapshot()["hi"]
    assert st["stage"] == "pretrain failed" and st["epochs_done"] == 0 and st["eta_s"] is None
    assert progress_line("hi", st) == "[hi] pretrain failed on nnnnnnnnnnnn"
    board.event("hi", {"event": "something else"})  # unknown events are ignored
    board.event("hi", {"event": "stage", "stage": "pretrain", "status": "done", "seconds": 3.0})
    assert board.snapshot()["hi"]["stage"] == "pretrain done"


def test_board_forwarder_sends_events_and_never_raises(caplog):
    calls = []

    class Method:
        def __init__(self, fail: bool = False):
            self.fail = fail

        def remote(self, *args):
            if self.fail:
                raise ConnectionError("actor is gone")
            calls.append(args)

    class FakeBoard:
        event = Method()

    forward = board_forwarder(FakeBoard(), "hi")
    event = {"event": "epoch", "stage": "pretrain", "epoch": 0, "epochs_total": 2}
    forward(event)
    assert calls == [("hi", event)]

    class GoneBoard:
        event = Method(fail=True)

    with caplog.at_level("DEBUG", logger="ulmfit_multi"):
        board_forwarder(GoneBoard(), "hi")(event)  # logged, not raised
    assert "could not send hi's event" in caplog.text


# ------------------------------------------------------------------ slow: a local 4-node Ray cluster


@pytest.fixture(scope="module")
def this_checkout_on_workers():
    """Ray workers inherit PYTHONPATH, not sys.path: make them import this checkout of ulmfit_multi."""
    from ulmfit_multi.ddp import same_code_env

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = same_code_env()["env_vars"]["PYTHONPATH"]
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def cluster(this_checkout_on_workers):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # fast detection of a removed node
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    for i in range(3):
        c.add_node(num_cpus=1, resources={f"worker{i}": 1})
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    yield c
    ray.shutdown()
    c.shutdown()


def _tries(work: Path, lang: str) -> list[dict]:
    f = work / "tries" / f"{lang}.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def _pretrain(langs, work, overrides, cluster, **kw):
    from ulmfit_multi.distributed import pretrain_many

    lines: list[str] = []
    out = pretrain_many(langs, overrides=overrides, work_dir=work, data_dir=work / "data", address=cluster.address,
                        gpus_per_lang=1, runner=fake_runner, echo=lines.append, **kw)
    return out, lines


@pytest.mark.slow
def test_languages_spread_over_nodes(cluster, tmp_path):
    out, lines = _pretrain(["mr", "hi", "ta"], tmp_path, {"steps": 10, "step_seconds": 0.3}, cluster)
    assert [s["status"] for s in out] == ["ok"] * 3
    assert len({s["node"] for s in out}) == 3  # one CPU per node: concurrent tasks must be on different nodes
    assert out[0]["valid_ppl"] == {"fwd": 100.0, "bwd": 120.5} and out[0]["tokens"] == 1002
    assert all(s["attempts"] == 1 for s in out)
    assert any("[mr] pretrain on" in x for x in lines)  # the live line from the runner's events
    assert any(x.startswith("[mr] pretrain on") and "/10, 1,000 tok/s" in x for x in lines)  # epoch events
    assert "ppl fwd" in lines[-2] and "mr" in lines[-2]
    assert "=== mr: try 1" in (tmp_path / "logs" / "mr.log").read_text()


@pytest.mark.slow
def test_failing_language_reported_others_finish(cluster, tmp_path):
    out, lines = _pretrain(["mr", "kn"], tmp_path, {"steps": 3, "step_seconds": 0.1, "fail": ["kn"]}, cluster,
                           max_retries=1)
    by = {s["lang"]: s for s in out}
    assert by["mr"]["status"] == "ok"
    assert by["kn"]["status"] == "failed" and by["kn"]["attempts"] == 2
    assert "RuntimeError: corpus for kn is broken" in by["kn"]["error"]
    assert len(_tries(tmp_path, "kn")) == 2
    assert "kn failed on try 2" in (tmp_path / "logs" / "kn.log").read_text()


@pytest.mark.slow
def test_killed_node_retries_elsewhere_and_resumes(cluster, tmp_path):
    """Runs last: it removes a worker node from the module's cluster."""
    head_id = cluster.head_node.node_id
    result: dict = {}
    overrides = {"steps": 40, "step_seconds": 0.25}
    t = threading.Thread(target=lambda: result.update(out=_pretrain(["mr", "hi", "ta"], tmp_path, overrides,
                                                                     cluster, max_retries=2)))
    t.start()
    victim = None
    deadline = time.time() + 60
    while victim is None and time.time() < deadline:  # a language on a worker node, a few steps in
        for lang in ("mr", "hi", "ta"):
            tries, ck = _tries(tmp_path, lang), tmp_path / "ckpt" / f"{lang}.json"
            if tries and tries[0]["node"] != head_id and ck.exists() and json.loads(ck.read_text())["step"] >= 4:
                victim = lang
                break
        time.sleep(0.2)
    assert victim, "no language reached step 4 on a worker node"
    node_id = _tries(tmp_path, victim)[0]["node"]
    node = next(n for n in cluster.worker_nodes if n.node_id == node_id)
    cluster.remove_node(node, allow_graceful=False)
    t.join(timeout=150)
    assert not t.is_alive(), "pretrain_many did not finish"
    out, lines = result["out"]
    by = {s["lang"]: s for s in out}
    assert all(s["status"] == "ok" for s in out), out
    tries = _tries(tmp_path, victim)
    assert len(tries) == 2 and by[victim]["attempts"] == 2
    assert tries[1]["node"] != node_id and by[victim]["node"] == tries[1]["node"]
    assert tries[1]["start_step"] >= 4  # resumed from its checkpoint, not from step 0
    assert json.loads((tmp_path / "ckpt" / f"{victim}.json").read_text())["step"] == 40
    assert any(f"[{victim}]" in x and "(try 2)" in x for x in lines)
