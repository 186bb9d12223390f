"""RunFolder finds a run's stage outputs by name, whatever the stage order: a stage inserted into the
pipeline moves the engine's numbered links, and every reader of a run folder still finds its stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ulmfit_multi.config import load_recipe
from ulmfit_multi.errors import StageError
from ulmfit_multi.partial import partial_records
from ulmfit_multi.paths import Paths
from ulmfit_multi.pipeline import STAGES
from ulmfit_multi.predict import Predictor
from ulmfit_multi.runfolder import RunFolder, make_record, read_records, write_records
from ulmfit_multi.stages import Stage, StageContext, run_stages
from ulmfit_multi.tables_gather import gather_runs

from test_pipeline import tiny_setup  # noqa: F401 (fixture shared with the pipeline tests)


def _stand_in(ctx: StageContext) -> dict:
    """A stage the pipeline does not have: counts the encoded tasks."""
    n = len(list((ctx.input("encode") / "tasks").iterdir()))
    (ctx.out / "count.json").write_text(json.dumps({"tasks": n}), encoding="utf-8")
    return {"tasks": n}


def test_a_stage_inserted_early_leaves_every_reader_working(tiny_setup) -> None:  # noqa: F811
    stand_in = Stage("count_tasks", _stand_in, reads=("tasks",), after=("encode",))
    stages = list(STAGES)
    stages.insert([s.name for s in stages].index("encode") + 1, stand_in)
    cfg = load_recipe(tiny_setup["recipe"], "base")
    cfg.runtime.progress, cfg.runtime.device = False, "cpu"
    paths = Paths.resolve(tiny_setup["data"], tiny_setup["mirror"], tiny_setup["work"])
    result = run_stages(stages, cfg, paths)

    run = RunFolder(result.run_dir)
    # the engine's links for humans are renumbered: the classifier is now the 9th stage
    assert (run.path / "05-count_tasks").is_symlink() and (run.path / "09-classifier").is_symlink()
    for st in stages:
        found = run.stage_dir(st.name)
        assert json.loads((found / "_stage.json").read_text(encoding="utf-8"))["stage"] == st.name
    assert run.stage_summary("count_tasks") == {"tasks": 1}
    # readers of run folders: records, gathered tables, partial scoring, prediction
    assert {r["system"] for r in run.records("evaluate")} >= {"ULMFiT fwd", "ULMFiT bwd", "ULMFiT ensemble"}
    written = gather_runs([run.path], tiny_setup["work"] / "gathered")
    assert "ULMFiT ensemble" in written["md"].read_text(encoding="utf-8")
    records, _, clf = partial_records(run.path)
    assert clf == run.stage_dir("classifier") and records
    assert len(Predictor.from_run(run.path).predict(["छान सुंदर चित्रपट"])) == 1


def test_unfinished_and_missing_stages(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="not a run folder"):
        RunFolder(tmp_path)
    (tmp_path / "config.resolved.toml").write_text("", encoding="utf-8")
    partial = tmp_path / "store" / "classifier" / "abc.partial"
    partial.mkdir(parents=True)
    (tmp_path / "run.json").write_text(json.dumps({"stages": [
        {"name": "classifier", "status": "running", "fingerprint": "abc", "path": str(partial), "seconds": 0}]}))
    run = RunFolder(tmp_path)
    assert run.find_stage("classifier") is None  # not finished
    assert run.find_stage("classifier", partial=True) == partial
    with pytest.raises(StageError, match="stage 'evaluate' has not finished"):
        run.stage_dir("evaluate")
    assert run.records("evaluate") is None


def test_records_round_trip(tmp_path: Path) -> None:
    records = [make_record("t", "ULMFiT fwd", 0, {"accuracy": 0.5}, 10, preset="smoke", note="n"),
               make_record("t", "ULMFiT ensemble of 3 seeds", None, {"accuracy": 0.6}, 10, preset="smoke")]
    write_records(tmp_path / "records.jsonl", records)
    assert read_records(tmp_path / "records.jsonl") == records
    assert not list(tmp_path.glob("*.tmp*"))
