"""End to end on the tiny recipe (tests/test_pipeline.py's mirror and recipe): export a classifier bundle and
use it where the run folder no longer exists; export the LMs and start a second recipe from them."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_pipeline import RECIPE, write_tiny  # the tiny_setup fixture's data, shared by this module's run
from ulmfit_multi.bundle import Bundle, BundleError
from ulmfit_multi.export import export_classifier, export_lm
from ulmfit_multi.pipeline import STAGE_NAMES, run_recipe
from ulmfit_multi.predict import Predictor

TEXTS = ["हा चित्रपट छान सुंदर आहे", "वाईट खराब गोष्ट", "आज शहर बातमी", "", "plain english words", "👍"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny recipe run once for every test here (like tiny_setup, module-scoped)."""
    root = tmp_path_factory.mktemp("tiny")
    mirror, recipe = write_tiny(root)
    kw = dict(mirror=mirror, work_dir=root / "work", data_dir=root / "data", progress=False, device="cpu")
    result = run_recipe(recipe, preset="base", **kw)
    return {"root": root, "run": result.run_dir, "kw": kw}  # type: ignore[dict-item]


def test_a_classifier_bundle_predicts_as_the_run_did_without_the_run(tiny_run: dict, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = tiny_run["run"]
    expected = Predictor.from_run(run)
    want_proba, want_docs = expected.predict_proba(TEXTS), expected.documents(TEXTS)
    folder = export_classifier(run, tmp_path / "b" / "gt").path
    zipped = export_classifier(run, tmp_path / "b" / "gt.zip", task="tiny-sent", seed=0)
    shutil.copytree(tiny_run["root"], tmp_path / "saved")  # the run is gone while the bundles are used
    shutil.rmtree(tiny_run["root"])
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        for bundle in (folder, zipped.path):
            p = Predictor.load(bundle)
            assert p.documents(TEXTS) == want_docs  # the same ids: language, normalization, document boundary
            np.testing.assert_allclose(p.predict_proba(TEXTS), want_proba, rtol=1e-5, atol=1e-6)
            assert [label for label, _ in p.predict(TEXTS)] == [label for label, _ in expected.predict(TEXTS)]
        result = CliRunner().invoke(_app(), ["predict", str(zipped.path), *TEXTS[:3]], catch_exceptions=False)
        assert result.exit_code == 0
        assert [line.split("\t")[0] for line in result.output.splitlines()] == [label for label, _ in
                                                                                 expected.predict(TEXTS[:3])]
    finally:
        shutil.copytree(tmp_path / "saved", tiny_run["root"])


def _app():
    from ulmfit_multi.cli import app

    return app


def test_a_bundle_carries_text_preparation_scores_versions_and_a_card(tiny_run: dict, tmp_path: Path) -> None:
    out = export_classifier(tiny_run["run"], tmp_path / "gt").path
    m = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    task_json = json.loads((tiny_run["run"] / "04-encode" / "tasks" / "tiny-sent" / "task.json").read_text())
    for key in ("lang", "normalization", "doc_boundary"):
        assert m["text"][key] == task_json[key]
    assert m["text"]["normalizer"] == "mr" and m["task"]["classes"] == ["negative", "neutral", "positive"]
    assert m["task"]["labels"] == {"-1": "negative", "0": "neutral", "1": "positive"}
    systems = {r["system"] for r in m["scores"]["records"]}
    assert {"ULMFiT fwd", "ULMFiT bwd", "ULMFiT ensemble", "majority"} <= systems
    assert m["data"]["splits"]["test"]["rows"] == 60 and len(m["data"]["splits"]["test"]["sha256"]) == 64
    assert m["code"]["ulmfit_multi"] and m["code"]["trained_with"]["torch"]
    assert set(m["files"]) == {"MODEL.md", "config.resolved.toml", "lang.toml", "scores.jsonl", "fwd/model.pt",
                               "bwd/model.pt", "tokenizer/spm.model", "tokenizer/spm.vocab", "tokenizer/tokenizer.json"}
    card = (out / "MODEL.md").read_text(encoding="utf-8")
    assert "# tiny-sent: ULMFiT text classifier (Marathi)" in card and "| ULMFiT ensemble |" in card
    assert "Made-up reference: 50.00 (nobody 2026)" in card and "`mr/task/test.csv` | 60 |" in card
    assert re.search(r"ulmfit-multi recipe \S*tiny.toml --preset base", card)
    assert f"ulmfit-multi export {tiny_run['run']} --task tiny-sent --seed 0 --out {out}" in card
    assert "bundle format 1" in card


def test_int8_quantization_keeps_the_labels_of_the_tiny_model(tiny_run: dict, tmp_path: Path) -> None:
    out = export_classifier(tiny_run["run"], tmp_path / "gt.zip").path
    fp32, int8 = Predictor.load(out), Predictor.load(out, quantize="int8")
    assert int8.quantized == "int8" and "quantized" in type(int8.models["fwd"].encoder.module.rnns[0].module).__module__
    np.testing.assert_allclose(int8.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.05)


def test_bf16_prediction_keeps_the_labels_of_the_tiny_model(tiny_run: dict, tmp_path: Path) -> None:
    from ulmfit_multi.bench_predict import load_predictor

    out = export_classifier(tiny_run["run"], tmp_path / "gt.zip").path
    fp32, bf16 = load_predictor(out, precision="fp32"), load_predictor(out, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    np.testing.assert_allclose(bf16.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.05)
    with pytest.raises(ValueError, match="int8 dynamic quantization.*bf16"):
        load_predictor(out, quantize="int8", precision="bf16")
    result = CliRunner().invoke(_app(), ["predict", str(out), *TEXTS[:2], "--precision", "bf16"],
                                catch_exceptions=False)
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 2


def test_batch_prediction_from_a_csv_file(tiny_run: dict, tmp_path: Path) -> None:
    out = export_classifier(tiny_run["run"], tmp_path / "gt.zip").path
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in TEXTS]])
    result = CliRunner().invoke(_app(), ["predict", str(out), "--input", str(src), "--output", str(tmp_path / "p.csv"),
                                         "-q"], catch_exceptions=False)
    assert result.exit_code == 0 and "6 documents in" in result.output and "documents/s" in result.output
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = [label for label, _ in Predictor.load(out).predict(TEXTS)]
    assert [r["label"] for r in rows] == labels and [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["flag"].split(" (")[0] for r in rows] == ["", "", "", "empty text", "unknown script",
                                                         "no letters or digits"]
    assert abs(sum(float(rows[0][f"prob_{c}"]) for c in ("negative", "neutral", "positive")) - 1) < 1e-4


def test_a_second_recipe_starts_from_the_exported_lm(tiny_run: dict, tmp_path: Path) -> None:
    lm = export_lm(tiny_run["run"], tmp_path / "lm.zip")
    assert Bundle.open(lm.path).kind == "lm"
    with pytest.raises(BundleError, match="a 'lm' bundle; prediction needs a classifier bundle"):
        Predictor.load(lm.path)
    recipe = re.sub(r"\[\[corpus\.sources\]\].*?tiny\.xml\.bz2\"\n", "", RECIPE, flags=re.S)
    recipe = recipe.replace("[pretrain]\n", f'[pretrain]\nfrom = {{ path = "lm.zip", sha256 = "{lm.sha256}" }}\n')
    second = tmp_path / "second.toml"
    second.write_text(recipe, encoding="utf-8")
    result = run_recipe(second, preset="base", **tiny_run["kw"])
    stages = {s.name: s for s in result.stages}
    assert [s.name for s in result.stages] == STAGE_NAMES and all(s.status == "ran" for s in result.stages)
    for name in ("corpus", "tokenizer"):  # done in a moment from the bundle
        assert stages[name].summary["from_bundle"] == str(lm.path) and stages[name].summary["bundle_sha256"] == lm.sha256
    assert stages["encode"].summary["lm"]["tokens"] == 0
    assert set(stages["pretrain"].summary) == {"fwd", "bwd"}
    assert stages["pretrain"].summary["fwd"]["epochs_here"] == 0
    assert not list((result.run_dir / "02-corpus").glob("*/*.txt"))
    first_tok = (tiny_run["run"] / "03-tokenizer" / "spm.model").read_bytes()
    assert (result.run_dir / "03-tokenizer" / "spm.model").read_bytes() == first_tok
    table = (result.run_dir / "10-table" / "results.md").read_text(encoding="utf-8")
    assert "ULMFiT ensemble" in table and "Made-up reference" in table
    # the bundle's checksum is in the fingerprints: another bundle at the same path reruns from fetch
    cfg_sha = json.loads((result.run_dir / "run.json").read_text())["stages"][0]["fingerprint"]
    (tmp_path / "lm.zip").unlink()
    other = export_lm(tiny_run["run"], tmp_path / "lm.zip", fine_tuned="tiny-sent")
    second.write_text(recipe.replace(lm.sha256, other.sha256), encoding="utf-8")
    again = run_recipe(second, preset="base", until="corpus", **tiny_run["kw"])
    assert again.stages[0].status == "ran" and again.stages[0].fingerprint[:12] != cfg_sha


def test_a_bundle_of_other_sizes_is_refused_with_the_settings_to_use(tiny_run: dict, tmp_path: Path) -> None:
    from ulmfit_multi.errors import RecipeError

    lm = export_lm(tiny_run["run"], tmp_path / "lm")
    second = tmp_path / "second.toml"
    second.write_text(RECIPE.replace("hidden_size = 24", "hidden_size = 32").replace(
        "[pretrain]\n", f'[pretrain]\nfrom = {{ path = "{lm.path}" }}\n'), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"hidden_size 24.*the recipe has model.hidden_size = 32.*--set "
                                          r"model.hidden_size=24"):
        run_recipe(second, preset="base", **tiny_run["kw"])


def test_exporting_what_the_run_lacks_says_what(tiny_run: dict, tmp_path: Path) -> None:
    from ulmfit_multi.errors import StageError

    with pytest.raises(StageError, match="no task 'nope'"):
        export_classifier(tiny_run["run"], tmp_path / "x", task="nope")
    with pytest.raises(StageError, match=r"no seed 3; the run trained seeds \[0\]"):
        export_classifier(tiny_run["run"], tmp_path / "x", seed=3)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x*"))


def test_bundles_at_an_object_storage_uri(tiny_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fsspec")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = (tmp_path / "store").as_uri()
    expected = Predictor.from_run(tiny_run["run"])
    up = export_classifier(tiny_run["run"], f"{store}/models/gt.zip")
    assert up.path == f"{store}/models/gt.zip" and (tmp_path / "store/models/gt.zip").is_file()
    assert not list(tmp_path.glob("ulmfit-export-*"))
    with Bundle.open(tmp_path / "store/models/gt.zip") as b:
        assert b.manifest["commands"]["export"].endswith(f"--out {store}/models/gt.zip")
    p = Predictor.load(up.path)  # downloaded into the cache, once
    assert [label for label, _ in p.predict(TEXTS)] == [label for label, _ in expected.predict(TEXTS)]
    cached = list((tmp_path / "cache").rglob("gt.zip"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    Predictor.load(up.path)
    assert cached[0].stat().st_mtime_ns == mtime  # unchanged in the store: not downloaded again
    lm = export_lm(tiny_run["run"], f"{store}/lm/tiny-lm.zip")
    recipe = re.sub(r"\[\[corpus\.sources\]\].*?tiny\.xml\.bz2\"\n", "", RECIPE, flags=re.S)
    recipe = recipe.replace("[pretrain]\n", f'[pretrain]\nfrom = {{ url = "{lm.path}", sha256 = "{lm.sha256}" }}\n')
    (tmp_path / "third.toml").write_text(recipe, encoding="utf-8")
    result = run_recipe(tmp_path / "third.toml", preset="base", until="tokenizer",
                        **{**tiny_run["kw"], "data_dir": tmp_path / "data"})
    assert (tmp_path / "data/lm-bundles/tiny-lm.zip").is_file()  # downloaded from the store's URI
    assert result.stages[-1].summary["bundle_sha256"] == lm.sha256
