"""The LM speed benchmark: `ulmfit_multi.bench` (what `ulmfit-multi bench lm` runs) and the bench/bench_lm.py
script over it, on tiny shapes in this process. The package never reaches into bench/."""

from __future__ import annotations

import ast
import math
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ulmfit_multi.bench import BUILDERS, bench_lm, build_nn_lstm, format_result

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(vocab=50, emb=8, hidden=12, layers=2, bptt=6, bs=2, steps=2, warmup=1, threads=1, isolate=False,
            verbose=False)


def test_bench_lm_times_ours_and_the_plain_lstm() -> None:
    out = bench_lm(**TINY)
    assert set(out["results"]) == {"ulmfit_multi", "nn_lstm"} == set(BUILDERS)
    for impl, r in out["results"].items():
        assert r["impl"] == impl and r["tokens_per_second"] > 0 and r["params"] > 0 and r["steps"] == 2
        assert r["memory_kind"] == "peak RSS"
        assert impl in format_result(r) and "tok/s" in format_result(r)
    assert out["config"]["emb"] == 8 and out["config"]["torch"] == torch.__version__


def _missing(vocab: int, emb: int, hidden: int, layers: int, weight_p: float) -> tuple[nn.Module, object]:
    raise ImportError("No module named 'not_installed'")


def test_extra_builders_and_unknown_implementations() -> None:
    out = bench_lm(**TINY, impls=("plain", "optional"), builders={"plain": build_nn_lstm, "optional": _missing})
    assert out["results"]["plain"]["tokens_per_second"] > 0
    assert "not_installed" in out["results"]["optional"]["skipped"]
    assert "skipped" in format_result(out["results"]["optional"])
    with pytest.raises(ValueError, match="unknown implementation.*fastai"):
        bench_lm(**TINY, impls=("fastai",))


def test_the_script_adds_fastai_as_an_optional_third(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts the checkout on sys.path
    spec = importlib.util.spec_from_file_location("bench_lm_script", ROOT / "bench" / "bench_lm.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # type: ignore[union-attr]
    out = script.main(["--vocab", "50", "--emb", "8", "--hidden", "12", "--layers", "2", "--bptt", "6", "--bs", "2",
                       "--steps", "1", "--warmup", "0", "--threads", "1", "--no-isolate",
                       "--impls", "ulmfit_multi,fastai", "--json", str(tmp_path / "bench.json")])
    assert set(out["results"]) == {"ulmfit_multi", "fastai"}
    if importlib.util.find_spec("fastai") is None:
        assert "skipped" in out["results"]["fastai"]
    assert (tmp_path / "bench.json").exists()


def test_the_classifier_inference_script_times_ours_int8_and_fastai(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts the checkout on sys.path
    spec = importlib.util.spec_from_file_location("bench_classify_script", ROOT / "bench" / "bench_classify.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # type: ignore[union-attr]
    out = script.main(["--docs", "20", "--mean-len", "5", "--vocab", "60", "--emb", "8", "--hidden", "12",
                       "--bptt", "4", "--bs", "8", "--threads", "1", "--json", str(tmp_path / "clf.json")])
    assert set(out["results"]) == {"ulmfit_multi@fp32", "ulmfit_multi@bf16", "ulmfit_multi-int8@fp32",
                                   "fastai@fp32", "fastai@bf16"}
    assert out["results"]["ulmfit_multi-int8@fp32"]["documents_per_second"] > 0
    if importlib.util.find_spec("fastai") is None:
        assert "skipped" in out["results"]["fastai@fp32"]
    assert (tmp_path / "clf.json").exists()


def test_the_package_never_imports_from_bench() -> None:
    bench_modules = {p.stem for p in (ROOT / "bench").glob("*.py")} | {"bench"}
    for path in (ROOT / "ulmfit_multi").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, f"{path} changes sys.path"
        for node in ast.walk(ast.parse(text)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not {n.split(".")[0] for n in names} & bench_modules, f"{path} imports from bench/"


def test_bench_lm_runs_each_implementation_at_each_precision() -> None:
    out = bench_lm(**TINY, precisions=("fp32", "bf16"))
    assert set(out["results"]) == {f"{i}@{p}" for i in BUILDERS for p in ("fp32", "bf16")}
    for key, r in out["results"].items():
        assert key == f"{r['impl']}@{r['precision']}" and r["tokens_per_second"] > 0 and r["final_loss"] == r["final_loss"]
        assert r["precision"] in format_result(r)
    assert out["config"]["precisions"] == ["fp32", "bf16"] and isinstance(out["config"]["cpu_native_bf16"], bool)
    assert bench_lm(**TINY, impls=("nn_lstm",))["results"]["nn_lstm"]["precision"] == "fp32"  # the default on a CPU
    with pytest.raises(ValueError, match="fp16"):
        bench_lm(**TINY, precisions=("fp16",))


def _load_script(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts the checkout on sys.path
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "bench" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # type: ignore[union-attr]
    return script


def test_the_precision_parity_script_trains_one_lm_per_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import numpy as np

    from ulmfit_multi.config import load_recipe, to_toml
    from ulmfit_multi.tokens import write_token_store

    run, encode = tmp_path / "run", tmp_path / "store" / "encode"
    rng = np.random.default_rng(0)
    write_token_store([rng.integers(1, 50, size=60).tolist() for _ in range(100)], encode / "lm", vocab_size=50)
    run.mkdir()
    cfg = load_recipe("mr", "smoke", ["model.emb_size=8", "model.hidden_size=12", "model.n_layers=2", "model.bptt=10",
                                      "pretrain.batch_size=4", "encode.valid_frac=0.2"])
    (run / "config.resolved.toml").write_text(to_toml(cfg.to_dict()), encoding="utf-8")
    (run / "run.json").write_text(json.dumps({"stages": [{"name": "encode", "status": "ran", "path": str(encode)}]}))
    script = _load_script("bench_precision", monkeypatch)
    out = script.main([str(run), "--steps", "3", "--threads", "1", "--out", str(tmp_path / "out"), "--no-progress",
                       "--valid-tokens", "500", "--set", "pretrain.lr=0.01", "--json", str(tmp_path / "p.json")])
    assert list(out["results"]) == ["fp32", "bf16"] and out["config"]["valid_tokens"] == 500
    fp32, bf16 = out["results"]["fp32"], out["results"]["bf16"]
    assert (fp32["precision"], bf16["precision"], fp32["steps"], bf16["steps"]) == ("fp32", "bf16", 3, 3)
    assert fp32["relative_difference"] == 0 and math.isclose(bf16["relative_difference"],
                                                              bf16["valid_ppl"] / fp32["valid_ppl"] - 1)
    assert abs(bf16["relative_difference"]) < 0.05 and (tmp_path / "p.json").exists()
    assert "bf16" in script.format_results(out)
