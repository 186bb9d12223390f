"""The stage engine, driven by stand-in stages that count their calls (no ML here)."""

from __future__ import annotations

import json
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from ulmfit_multi.atomic import read_json, write_json
from ulmfit_multi.config import Config
from ulmfit_multi.errors import StageError
from ulmfit_multi.paths import Paths
from ulmfit_multi.stages import (
    META,
    Stage,
    StageContext,
    compute_fingerprints,
    run_stages,
    select,
    stage_status,
    store_dir,
)

NAMES = ["prep", "tok", "train", "base", "report"]
TRAIN_STEPS = 6


class Crash(RuntimeError):
    """Raised by the training stand-in to simulate a killed run."""


def make_stages(calls: Counter, crash_at: dict[str, int] | None = None,
                still_valid=None) -> list[Stage]:
    """prep -> tok -> train -> report, and prep -> base -> report.

    `crash_at["train"] = k` makes the training stand-in raise before saving step k (once).
    """
    crash_at = crash_at if crash_at is not None else {}

    def prep(ctx: StageContext):
        """Prepare text."""
        calls["prep"] += 1
        (ctx.out / "text.txt").write_text(f"min_chars={ctx.cfg.corpus.min_chars}\n", encoding="utf-8")
        return {"lines": 1}

    def tok(ctx: StageContext):
        """Tokenize."""
        calls["tok"] += 1
        text = (ctx.input("prep") / "text.txt").read_text(encoding="utf-8")
        (ctx.out / "vocab.txt").write_text(f"{text}vocab={ctx.cfg.tokenizer.vocab_size}\n", encoding="utf-8")

    def train(ctx: StageContext):
        """Train with a checkpoint per step."""
        calls["train"] += 1
        ckpt = ctx.out / "ckpt" / "state.json"
        state = read_json(ckpt) if ckpt.exists() else {"step": 0, "value": 1, "steps_run": []}
        lr_milli = round(ctx.cfg.classifier.lr * 1000)
        for step in range(state["step"], TRAIN_STEPS):
            if crash_at.get("train") == step:
                del crash_at["train"]
                raise Crash(f"killed at step {step}")
            state["value"] = (state["value"] * 31 + step + lr_milli) % 1_000_003
            state["step"] = step + 1
            state["steps_run"].append(step)
            write_json(ckpt, state)
            if ctx.on_checkpoint is not None:  # a remote store: uploaded (tests/test_cluster_s3.py)
                ctx.on_checkpoint(ckpt)
        write_json(ctx.out / "model.json", {"value": state["value"], "step": state["step"]})
        return {"value": state["value"], "steps_run": state["steps_run"]}

    def base(ctx: StageContext):
        """Baselines."""
        calls["base"] += 1
        (ctx.out / "base.txt").write_text(str(ctx.cfg.evaluate.baselines), encoding="utf-8")

    def report(ctx: StageContext):
        """Report."""
        calls["report"] += 1
        model = read_json(ctx.input("train") / "model.json")
        (ctx.out / "results.md").write_text(f"value {model['value']}\n", encoding="utf-8")

    return [
        Stage("prep", prep, reads=("corpus",)),
        Stage("tok", tok, reads=("tokenizer",), after=("prep",)),
        Stage("train", train, reads=("classifier",), after=("tok",), still_valid=still_valid),
        Stage("base", base, reads=("evaluate.baselines",), after=("prep",)),
        Stage("report", report, reads=("reference",), after=("train", "base")),
    ]


def tiny_cfg() -> Config:
    cfg = Config()
    cfg.recipe.name = "tiny"
    cfg.recipe.langs = ["mr"]
    cfg.preset = "smoke"
    cfg.source_file = "tiny.toml"
    cfg.classifier.lr = 0.01
    return cfg


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths(data_dir=tmp_path / "data", mirror=None, work_dir=tmp_path / "work")


def statuses(result) -> dict[str, str]:
    return {s.name: s.status for s in result.stages}


def test_second_run_skips_everything(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    first = run_stages(stages, cfg, paths)
    assert statuses(first) == dict.fromkeys(NAMES, "ran")
    assert calls == Counter(dict.fromkeys(NAMES, 1))
    started = time.perf_counter()
    second = run_stages(stages, cfg, paths)
    assert time.perf_counter() - started < 1.0
    assert statuses(second) == dict.fromkeys(NAMES, "skipped")
    assert calls == Counter(dict.fromkeys(NAMES, 1))  # zero new calls
    assert [s.path for s in second.stages] == [s.path for s in first.stages]
    assert second["train"].summary == first["train"].summary  # read back from _stage.json


def test_fingerprints_ignore_runtime_knobs(paths):
    calls: Counter = Counter()
    run_stages(make_stages(calls), tiny_cfg(), paths)
    cfg = tiny_cfg()
    cfg.runtime.workers = 8
    cfg.runtime.progress = False
    assert statuses(run_stages(make_stages(calls), cfg, paths)) == dict.fromkeys(NAMES, "skipped")


def test_downstream_config_change_reruns_only_dependents(paths):
    calls: Counter = Counter()
    run_stages(make_stages(calls), tiny_cfg(), paths)
    cfg = tiny_cfg()
    cfg.classifier.lr = 0.02  # read only by "train"
    calls.clear()
    result = run_stages(make_stages(calls), cfg, paths)
    assert statuses(result) == {"prep": "skipped", "tok": "skipped", "train": "ran", "base": "skipped",
                                "report": "ran"}
    assert calls == Counter({"train": 1, "report": 1})
    # both versions stay in the store, so switching back is free
    calls.clear()
    back = run_stages(make_stages(calls), tiny_cfg(), paths)
    assert statuses(back) == dict.fromkeys(NAMES, "skipped")


def test_upstream_config_change_reruns_the_chain(paths):
    calls: Counter = Counter()
    run_stages(make_stages(calls), tiny_cfg(), paths)
    cfg = tiny_cfg()
    cfg.tokenizer.vocab_size = 123
    calls.clear()
    result = run_stages(make_stages(calls), cfg, paths)
    assert calls == Counter({"tok": 1, "train": 1, "report": 1})
    assert result["prep"].status == result["base"].status == "skipped"


def test_force_reruns_everything(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    run_stages(stages, cfg, paths)
    result = run_stages(stages, cfg, paths, force=True)
    assert statuses(result) == dict.fromkeys(NAMES, "ran")
    assert calls == Counter(dict.fromkeys(NAMES, 2))
    assert all(store_dir(paths, n, s.fingerprint).exists() for n, s in zip(NAMES, result.stages))
    assert not list((paths.work_dir / "store").glob("*/*.partial"))
    assert not list((paths.work_dir / "store").glob("*/*.old"))


def test_force_with_until_stops_there(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    run_stages(stages, cfg, paths)
    calls.clear()
    result = run_stages(stages, cfg, paths, until="tok", force=True)
    assert statuses(result) == {"prep": "ran", "tok": "ran"}
    assert calls == Counter({"prep": 1, "tok": 1})


def test_from_reruns_that_stage_and_later_ones(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    run_stages(stages, cfg, paths)
    calls.clear()
    result = run_stages(stages, cfg, paths, from_stage="train")
    assert statuses(result) == {"prep": "skipped", "tok": "skipped", "train": "ran", "base": "ran",
                                "report": "ran"}
    assert calls == Counter({"train": 1, "base": 1, "report": 1})


def test_until_runs_a_prefix(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    result = run_stages(stages, cfg, paths, until="tok")
    assert statuses(result) == {"prep": "ran", "tok": "ran"}
    assert calls == Counter({"prep": 1, "tok": 1})
    rows = {name: state for name, state, _ in stage_status(stages, cfg, paths)}
    assert rows == {"prep": "done", "tok": "done", "train": "missing", "base": "missing", "report": "missing"}


def test_only_with_missing_input_is_a_helpful_error(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    with pytest.raises(StageError) as e:
        run_stages(stages, cfg, paths, only="tok")
    msg = str(e.value)
    assert "'tok'" in msg and "'prep'" in msg and "has not been run" in msg
    assert "--until prep" in msg and "recipe tiny --preset smoke" in msg
    assert calls == Counter()


def test_only_runs_one_stage_when_inputs_exist(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    run_stages(stages, cfg, paths, until="prep")
    calls.clear()
    result = run_stages(stages, cfg, paths, only="tok")
    assert statuses(result) == {"tok": "ran"}
    assert calls == Counter({"tok": 1})
    again = run_stages(stages, cfg, paths, only="tok", force=True)
    assert statuses(again) == {"tok": "ran"}
    assert calls == Counter({"tok": 2})


@pytest.mark.parametrize("flag", ["from_stage", "only", "until"])
def test_unknown_stage_name_lists_stages(paths, flag):
    with pytest.raises(StageError, match="no such stage; stages are prep, tok, train, base, report"):
        run_stages(make_stages(Counter()), tiny_cfg(), paths, **{flag: "nope"})


def test_contradictory_flags_are_rejected(paths):
    stages, cfg = make_stages(Counter()), tiny_cfg()
    with pytest.raises(StageError, match="--from 'report' comes after --until 'tok'"):
        run_stages(stages, cfg, paths, from_stage="report", until="tok")
    with pytest.raises(StageError, match="cannot be combined"):
        run_stages(stages, cfg, paths, only="tok", until="train")


def test_from_and_until_together(paths):
    calls: Counter = Counter()
    stages, cfg = make_stages(calls), tiny_cfg()
    run_stages(stages, cfg, paths)
    calls.clear()
    result = run_stages(stages, cfg, paths, from_stage="tok", until="train")
    assert statuses(result) == {"prep": "skipped", "tok": "ran", "train": "ran"}
    assert calls == Counter({"tok": 1, "train": 1})


def test_select_without_flags_forces_nothing():
    stages = make_stages(Counter())
    chosen, forced = select(stages, from_stage=None, only=None, until=None, force=False)
    assert [s.name for s in chosen] == NAMES and forced == set()


def test_dependency_on_a_later_stage_is_rejected():
    stages = make_stages(Counter())
    with pytest.raises(StageError, match="'tok' depends on"):
        compute_fingerprints([stages[1], stages[0]], tiny_cfg())


def test_crash_leaves_partial_and_resume_matches_uninterrupted(tmp_path):
    crashed = Paths(data_dir=tmp_path / "d", mirror=None, work_dir=tmp_path / "crashed")
    clean = Paths(data_dir=tmp_path / "d", mirror=None, work_dir=tmp_path / "clean")
    cfg = tiny_cfg()
    calls: Counter = Counter()
    stages = make_stages(calls, crash_at={"train": 3})
    with pytest.raises(Crash):
        run_stages(stages, cfg, crashed)
    fp = compute_fingerprints(stages, cfg)["train"]
    done = store_dir(crashed, "train", fp)
    partial = done.with_name(done.name + ".partial")
    assert partial.is_dir() and not done.exists()
    assert read_json(partial / "ckpt" / "state.json")["step"] == 3
    assert not (partial / META).exists()
    run = read_json(crashed.work_dir / "runs" / "tiny-smoke" / "run.json")
    assert [(s["name"], s["status"]) for s in run["stages"]] == [("prep", "ran"), ("tok", "ran"), ("train", "failed")]
    assert run["stages"][-1]["error"] == "Crash: killed at step 3"
    rows = {name: state for name, state, _ in stage_status(stages, cfg, crashed)}
    assert rows == {"prep": "done", "tok": "done", "train": "partial", "base": "missing", "report": "missing"}

    resumed = run_stages(stages, cfg, crashed)  # the crash was one-shot
    assert statuses(resumed) == {"prep": "skipped", "tok": "skipped", "train": "ran", "base": "ran",
                                 "report": "ran"}
    assert resumed["train"].summary["steps_run"] == [0, 1, 2, 3, 4, 5]  # 0-2 from the first try
    assert calls["train"] == 2
    assert done.is_dir() and not partial.exists()

    uninterrupted = run_stages(make_stages(Counter()), cfg, clean)
    assert resumed["train"].fingerprint == uninterrupted["train"].fingerprint
    for rel in ("train/model.json", "report/results.md"):
        stage, name = rel.split("/")
        a = store_dir(crashed, stage, resumed[stage].fingerprint) / name
        b = store_dir(clean, stage, uninterrupted[stage].fingerprint) / name
        assert a.read_bytes() == b.read_bytes()


def test_forced_rerun_discards_a_stale_partial(paths):
    calls: Counter = Counter()
    cfg = tiny_cfg()
    with pytest.raises(Crash):
        run_stages(make_stages(calls, crash_at={"train": 2}), cfg, paths)
    result = run_stages(make_stages(calls), cfg, paths, from_stage="train")
    assert result["train"].summary["steps_run"] == list(range(TRAIN_STEPS))  # started from scratch


def test_stage_metadata(paths):
    cfg = tiny_cfg()
    result = run_stages(make_stages(Counter()), cfg, paths)
    train = result["train"]
    meta = read_json(train.path / META)
    for key in ("stage", "fingerprint", "version", "recipe", "preset", "config", "inputs", "started",
                "seconds", "summary", "outputs", "environment"):
        assert key in meta, key
    assert meta["stage"] == "train" and meta["fingerprint"] == train.fingerprint
    assert meta["recipe"] == "tiny" and meta["preset"] == "smoke"
    assert meta["config"] == {"classifier": cfg.to_dict()["classifier"]}
    assert meta["inputs"] == {"tok": {"fingerprint": result["tok"].fingerprint[:12], "path": str(result["tok"].path)}}
    assert isinstance(meta["seconds"], (int, float)) and meta["seconds"] >= 0
    assert meta["summary"]["value"] == read_json(train.path / "model.json")["value"]
    assert meta["outputs"] == [{"path": "model.json", "bytes": (train.path / "model.json").stat().st_size}]
    env = meta["environment"]
    for key in ("git_commit", "python", "torch", "ulmfit_multi"):
        assert key in env, key
    assert env["python"].count(".") == 2


def test_run_folder_has_run_json_resolved_config_and_links(paths):
    cfg = tiny_cfg()
    result = run_stages(make_stages(Counter()), cfg, paths)
    run_dir = paths.work_dir / "runs" / "tiny-smoke"
    assert result.run_dir == run_dir
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert run["recipe"] == "tiny" and run["preset"] == "smoke"
    assert [(s["name"], s["status"]) for s in run["stages"]] == [(n, "ran") for n in NAMES]
    assert "environment" in run
    resolved = tomllib.loads((run_dir / "config.resolved.toml").read_text(encoding="utf-8"))
    assert resolved == cfg.to_dict()
    for i, stage in enumerate(result.stages):
        link = run_dir / f"{i + 1:02d}-{stage.name}"
        assert link.resolve() == stage.path.resolve()
    run_stages(make_stages(Counter()), cfg, paths)  # links are replaced, not duplicated
    run = read_json(run_dir / "run.json")
    assert [s["status"] for s in run["stages"]] == ["skipped"] * len(NAMES)


def test_stage_status_reports_missing_then_done(paths):
    stages, cfg = make_stages(Counter()), tiny_cfg()
    rows = stage_status(stages, cfg, paths)
    assert [(n, s) for n, s, _ in rows] == [(n, "missing") for n in NAMES]
    fps = compute_fingerprints(stages, cfg)
    assert [fp for _, _, fp in rows] == [fps[n][:12] for n in NAMES]
    run_stages(stages, cfg, paths)
    assert [s for _, s, _ in stage_status(stages, cfg, paths)] == ["done"] * len(NAMES)


def test_still_valid_false_forces_a_rerun(paths):
    calls: Counter = Counter()
    valid = {"train": True}
    seen: list[Path] = []

    def still_valid(done: Path) -> bool:
        seen.append(done)
        return valid["train"]

    cfg = tiny_cfg()
    run_stages(make_stages(calls, still_valid=still_valid), cfg, paths)
    run_stages(make_stages(calls, still_valid=still_valid), cfg, paths)
    assert calls["train"] == 1 and len(seen) == 1
    valid["train"] = False
    result = run_stages(make_stages(calls, still_valid=still_valid), cfg, paths)
    assert result["train"].status == "ran" and calls["train"] == 2
    assert result["report"].status == "skipped"  # same fingerprint, so its output is still good
    assert seen[-1] == result["train"].path


def test_stage_input_outside_after_is_an_error(paths):
    def greedy(ctx: StageContext):
        """Reads something it did not declare."""
        ctx.input("prep")

    with pytest.raises(StageError, match="not one of its inputs"):
        run_stages([Stage("greedy", greedy, reads=())], tiny_cfg(), paths)


# ---------------------------------------------------------------- structured events (on_event, ctx.emit)


def _stage_events(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["stage"], e["status"]) for e in events if e["event"] == "stage"]


def test_run_stages_emits_run_done_then_skip_in_order(paths):
    events: list[dict] = []
    stages, cfg = make_stages(Counter()), tiny_cfg()
    run_stages(stages, cfg, paths, on_event=events.append)
    assert _stage_events(events) == [(n, s) for n in NAMES for s in ("run", "done")]
    done = [e for e in events if e["status"] == "done"]
    assert all(isinstance(e["seconds"], float) and e["seconds"] >= 0 for e in done)
    assert all("seconds" not in e for e in events if e["status"] != "done")
    events.clear()
    run_stages(stages, cfg, paths, on_event=events.append)
    assert events == [{"event": "stage", "stage": n, "status": "skip"} for n in NAMES]


def test_run_stages_emits_failed_when_a_stage_raises(paths):
    events: list[dict] = []
    with pytest.raises(Crash):
        run_stages(make_stages(Counter(), crash_at={"train": 2}), tiny_cfg(), paths, on_event=events.append)
    assert _stage_events(events) == [("prep", "run"), ("prep", "done"), ("tok", "run"), ("tok", "done"),
                                     ("train", "run"), ("train", "failed")]
    assert events[-1]["error"] == "Crash: killed at step 2"


def test_an_on_event_that_raises_does_not_break_the_run(paths, caplog):
    seen: list[dict] = []

    def broken(event: dict) -> None:
        seen.append(event)
        raise RuntimeError("the progress display is gone")

    def chatty(ctx: StageContext):
        """Reports an event of its own."""
        ctx.emit({"event": "epoch", "epoch": 0})
        return {"ok": True}

    stages = [*make_stages(Counter()), Stage("chatty", chatty, reads=())]
    with caplog.at_level("DEBUG", logger="ulmfit_multi"):
        result = run_stages(stages, tiny_cfg(), paths, on_event=broken)
    assert statuses(result) == {**dict.fromkeys(NAMES, "ran"), "chatty": "ran"}
    assert result["chatty"].summary == {"ok": True}
    assert len(seen) == 2 * len(NAMES) + 3  # run/done per stage, and chatty's own event between its run and done
    assert "on_event callback failed" in caplog.text


def test_stage_context_emit_forwards_with_the_stage_name(paths):
    events: list[dict] = []

    def trainer(ctx: StageContext):
        """Reports two epochs."""
        for i in range(2):
            ctx.emit({"event": "epoch", "epoch": i, "epochs_total": 2, "valid_ppl": 10.0 - i})

    run_stages([Stage("pretrain", trainer, reads=())], tiny_cfg(), paths, on_event=events.append)
    assert events[0] == {"event": "stage", "stage": "pretrain", "status": "run"}
    assert events[1:3] == [{"event": "epoch", "stage": "pretrain", "epoch": i, "epochs_total": 2, "valid_ppl": 10.0 - i}
                           for i in range(2)]
    assert (events[3]["stage"], events[3]["status"]) == ("pretrain", "done")


def test_stage_context_emit_defaults_to_a_no_op(paths, tmp_path):
    ctx = StageContext(cfg=tiny_cfg(), paths=paths, stage="x", out=tmp_path, inputs={}, fingerprint="f" * 64)
    ctx.emit({"event": "epoch", "epoch": 0})  # nothing listens: nothing happens

    def trainer(ctx: StageContext):
        """Emits with nobody listening."""
        ctx.emit({"event": "epoch", "epoch": 0})

    assert run_stages([Stage("quiet", trainer, reads=())], tiny_cfg(), paths)["quiet"].status == "ran"


# ------------------------------------------------------------------ input files in the fingerprints


class FakeFiles:
    """An InputSource: identities set by the test (`after_fetch` replaces them once the fetching stage ran)."""

    def __init__(self, ids: dict, untouched: bool = True):
        self.ids, self.untouched, self.after_fetch = ids, untouched, None
        self.asked: list[tuple] = []

    def identities(self) -> dict:
        return {g: dict(v) for g, v in self.ids.items()}

    def untouched_since(self, groups, when) -> bool:
        self.asked.append(tuple(groups))
        return self.untouched


def data_stages(calls: Counter, files: FakeFiles | None = None) -> list[Stage]:
    """get (finds the files; may "download" one) -> use_a (reads group a), use_b (reads group b) -> report."""
    def stage(name: str):
        def fn(ctx: StageContext):
            calls[name] += 1
            if name == "get" and files is not None and files.after_fetch is not None:
                files.ids = files.after_fetch
            (ctx.out / "out.txt").write_text(name, encoding="utf-8")
        fn.__doc__ = name
        return fn

    return [
        Stage("get", stage("get"), reads=("corpus.sources",), data=("a", "b"), fetches=True),
        Stage("use_a", stage("use_a"), reads=("corpus",), after=("get",), data=("a",)),
        Stage("use_b", stage("use_b"), reads=("tokenizer",), after=("get",), data=lambda cfg: ("b",)),
        Stage("report", stage("report"), reads=("reference",), after=("use_a", "use_b")),
    ]


DATA_NAMES = ["get", "use_a", "use_b", "report"]


def test_a_changed_input_file_reruns_the_stages_that_read_it_and_what_follows(paths):
    files = FakeFiles({"a": {"x.csv": "sha256:1"}, "b": {"dump": "sha256:2"}})
    calls: Counter = Counter()
    assert statuses(run_stages(data_stages(calls), tiny_cfg(), paths, files=files)) == dict.fromkeys(DATA_NAMES, "ran")
    assert statuses(run_stages(data_stages(calls), tiny_cfg(), paths, files=files)) == dict.fromkeys(DATA_NAMES,
                                                                                                      "skipped")
    files.ids["b"]["dump"] = "sha256:3"
    calls.clear()
    result = run_stages(data_stages(calls), tiny_cfg(), paths, files=files)
    assert calls == Counter({"get": 1, "use_b": 1, "report": 1})  # use_a reads only group a
    assert read_json(result["use_b"].path / META)["data"] == {"b": {"dump": "sha256:3"}}
    files.ids["a"]["new.csv"] = "absent"  # a file that is missing now counts too
    calls.clear()
    run_stages(data_stages(calls), tiny_cfg(), paths, files=files)
    assert calls == Counter({"get": 1, "use_a": 1, "report": 1})


def test_without_identities_fingerprints_are_the_config_only_ones(paths):
    stages, cfg = data_stages(Counter()), tiny_cfg()
    assert compute_fingerprints(stages, cfg, {}) == compute_fingerprints(stages, cfg)
    with_ids = compute_fingerprints(stages, cfg, {"a": {"x": "absent"}})
    assert with_ids["use_b"] == compute_fingerprints(stages, cfg)["use_b"]  # get passes on no identities


def test_files_are_looked_at_again_after_the_fetching_stage(paths):
    """A file fetch downloads is absent before it and present after: the stages after fetch hash it as it is
    after fetch, so the next run reruns only fetch (cheap) and nothing that read the file."""
    files = FakeFiles({"a": {"x.csv": "absent"}})
    files.after_fetch = {"a": {"x.csv": "sha256:downloaded"}}
    calls: Counter = Counter()
    first = run_stages(data_stages(calls, files), tiny_cfg(), paths, files=files)
    assert read_json(first["use_a"].path / META)["data"] == {"a": {"x.csv": "sha256:downloaded"}}
    assert read_json(first.run_dir / "run.json")["inputs"] == {"a": {"x.csv": "sha256:downloaded"}}
    files.after_fetch = None
    calls.clear()
    second = run_stages(data_stages(calls, files), tiny_cfg(), paths, files=files)
    assert calls == Counter({"get": 1})
    assert [s["name"] for s in read_json(second.run_dir / "run.json")["stages"]] == DATA_NAMES


def test_only_a_later_stage_uses_the_identities_the_run_recorded(paths):
    """`--only` on a machine without the data (the GPU half of a split run) finds the inputs in the store."""
    calls: Counter = Counter()
    run_stages(data_stages(calls), tiny_cfg(), paths, files=FakeFiles({"a": {"x.csv": "sha256:1"}}), until="use_b")
    nothing_here = FakeFiles({"a": {"x.csv": "absent"}, "b": {"dump": "absent"}})
    calls.clear()
    result = run_stages(data_stages(calls), tiny_cfg(), paths, files=nothing_here, only="report")
    assert statuses(result) == {"report": "ran"} and calls == Counter({"report": 1})
    assert read_json(result.run_dir / "run.json")["inputs"] == {"a": {"x.csv": "sha256:1"}}


def _make_legacy(paths, cfg) -> None:
    """Stage folders as a version before file identities made them: no "data" in _stage.json."""
    run_stages(data_stages(Counter()), cfg, paths)
    for meta in (paths.work_dir / "store").glob(f"*/*/{META}"):
        data = read_json(meta)
        del data["data"]
        write_json(meta, data)


def test_a_folder_made_before_file_identities_is_reused_when_its_files_are_untouched(paths):
    cfg = tiny_cfg()
    _make_legacy(paths, cfg)
    calls: Counter = Counter()
    files = FakeFiles({"a": {"x.csv": "sha256:1"}, "b": {"dump": "sha256:2"}})
    result = run_stages(data_stages(calls), cfg, paths, files=files)
    assert calls == Counter() and statuses(result) == dict.fromkeys(DATA_NAMES, "skipped")
    legacy = compute_fingerprints(data_stages(Counter()), cfg)
    for s in result.stages:
        assert s.fingerprint != legacy[s.name]
        assert s.path.is_symlink() and s.path.resolve() == store_dir(paths, s.name, legacy[s.name]).resolve()
    assert ("a", "b") in files.asked and ("a",) in files.asked
    # a forced rerun replaces the link with a real folder and leaves the old one alone
    forced = run_stages(data_stages(calls), cfg, paths, files=files, only="use_a", force=True)
    assert not forced["use_a"].path.is_symlink() and store_dir(paths, "use_a", legacy["use_a"]).is_dir()


def test_a_folder_made_before_file_identities_is_not_reused_when_a_file_changed_since(paths):
    cfg = tiny_cfg()
    _make_legacy(paths, cfg)
    calls: Counter = Counter()
    run_stages(data_stages(calls), cfg, paths, files=FakeFiles({"a": {"x.csv": "sha256:1"}}, untouched=False))
    # get and use_a read group a; report follows use_a; use_b reads group b (no identities: same fingerprint)
    assert calls == Counter({"get": 1, "use_a": 1, "report": 1})


def test_a_folder_with_file_identities_is_never_adopted(paths):
    cfg = tiny_cfg()
    run_stages(data_stages(Counter()), cfg, paths, files=FakeFiles({}))  # made by this version ("data" recorded)
    calls: Counter = Counter()
    run_stages(data_stages(calls), cfg, paths, files=FakeFiles({"b": {"dump": "sha256:2"}}))
    assert calls == Counter({"get": 1, "use_b": 1, "report": 1})


def test_run_json_records_the_invocation(paths):
    invocation = {"recipe": "tiny.toml", "preset": "smoke", "overrides": ["a.b=1"]}
    run_stages(data_stages(Counter()), tiny_cfg(), paths, invocation=invocation)
    run_dir = paths.work_dir / "runs" / "tiny-smoke"
    assert read_json(run_dir / "run.json")["invocation"] == invocation
    run_stages(data_stages(Counter()), tiny_cfg(), paths)  # a call without one keeps the last
    assert read_json(run_dir / "run.json")["invocation"] == invocation
