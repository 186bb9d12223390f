"""Training precision (`model.precision`, precision.py): what each value resolves to, that it is a validated,
fingerprinted recipe key, and that bf16 on the CPU trains with fp32 parameters, losses and carried LSTM state."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train import FakeClassifierBatches, FakeLMStream, clf_data, grammar_tokens, tiny_clf, tiny_lm
from ulmfit_multi import precision as prec
from ulmfit_multi.config import ClassifierConfig, LMSection, RecipeError, load_recipe, section
from ulmfit_multi.precision import autocast, cpu_flags, resolve_precision
from ulmfit_multi.train import train_lm
from ulmfit_multi.train_classifier import predict_proba, train_classifier

torch.set_num_threads(1)


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch):
    """Set whether this 'CPU' has native bf16: native_bf16(True)."""
    return lambda has: monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: has)


@pytest.mark.parametrize("has", [True, False])
def test_auto_is_bf16_on_cuda_and_on_cpus_with_native_bf16(native_bf16, has) -> None:
    native_bf16(has)
    assert resolve_precision("auto", "cpu") == ("bf16" if has else "fp32")
    assert resolve_precision("auto", "cuda") == resolve_precision("auto", "cuda:1") == "bf16"
    # the default keeps the behaviour from before the key: bf16 autocast on CUDA only, whatever the CPU
    assert (resolve_precision("cuda-bf16", "cpu"), resolve_precision("cuda-bf16", "cuda")) == ("fp32", "bf16")
    for fixed in ("fp32", "bf16"):
        assert resolve_precision(fixed, "cpu") == resolve_precision(fixed, "cuda") == fixed
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\nbogus\t: 1\n", encoding="utf-8")
    assert {"avx512_bf16", "amx_tile", "avx512f"} <= cpu_flags(info)
    assert cpu_flags(tmp_path / "missing") == set()
    for flags, has in [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx512f", "avx2"}, False),
                       (set(), False)]:
        monkeypatch.setattr(prec, "cpu_flags", lambda flags=flags: flags)
        prec.cpu_has_native_bf16.cache_clear()
        assert prec.cpu_has_native_bf16() is has
    prec.cpu_has_native_bf16.cache_clear()


def test_autocast_is_cpu_autocast_only_for_bf16() -> None:
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    for p in ("fp32", "cuda-bf16"):
        with autocast("cpu", p):
            assert not torch.is_autocast_enabled("cpu")


def test_precision_is_a_validated_key_fingerprinted_only_off_its_default() -> None:
    from ulmfit_multi.pipeline import STAGES
    from ulmfit_multi.stages import compute_fingerprints

    cfg = load_recipe("mr", "smoke")
    assert cfg.model.precision == "cuda-bf16"
    assert "precision" not in section(cfg, "model", for_fingerprint=True)  # cached runs keep their fingerprints
    base = compute_fingerprints(STAGES, cfg)
    assert compute_fingerprints(STAGES, load_recipe("mr", "smoke", ['model.precision="cuda-bf16"'])) == base
    for value in ("auto", "fp32", "bf16"):
        changed = compute_fingerprints(STAGES, load_recipe("mr", "smoke", [f'model.precision="{value}"']))
        assert [s for s in base if changed[s] != base[s]] == ["pretrain", "finetune_lm", "classifier", "evaluate",
                                                                "table", "curves"]
    with pytest.raises(RecipeError, match="model.precision.*fp16.*auto"):
        load_recipe("mr", "smoke", ['model.precision="fp16"'])


def test_cpu_autocast_runs_the_fused_lstm_in_bf16_and_carries_an_fp32_state() -> None:
    torch.manual_seed(0)
    model = tiny_lm()
    x = grammar_tokens(80, 1).view(4, 20)
    for _ in range(2):  # the second batch starts from the state the first one left
        with autocast("cpu", "bf16"):
            out = model(x)
        assert out.raw.dtype == torch.bfloat16 and out.logits.dtype == torch.bfloat16  # LSTM and decoder in bf16
        assert all(t.dtype == torch.float32 for h in model.encoder.hidden for t in h)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_train_lm_in_bf16_on_cpu_keeps_fp32_parameters_state_and_losses(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_lm()
    before = [p.detach().clone() for p in model.parameters()]
    seen = []

    def hook(info: dict) -> None:
        hidden = info["model"].encoder.hidden
        seen.append((info["loss"], {t.dtype for h in hidden for t in h}, {p.dtype for p in info["model"].parameters()},
                     {s.dtype for st in info["optimizer"].state.values() for s in st.values() if s.dim()}))

    s = train_lm(model, FakeLMStream(grammar_tokens(3000, 1)), FakeLMStream(grammar_tokens(600, 2)),
                 LMSection(epochs=2, max_batches_per_epoch=6), tmp_path, progress=False, precision="bf16", on_step=hook)
    assert s["precision"] == "bf16" and len(seen) == 12
    for loss, hidden, params, opt_state in seen:
        assert math.isfinite(loss) and hidden == params == opt_state == {torch.float32}
    assert math.isfinite(s["valid_loss"]) and s["valid_loss"] < math.log(50)  # learnt something, in bf16
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    history = [r for r in map(json.loads, (tmp_path / "history.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    assert [r["precision"] for r in history] == ["bf16", "bf16"]


def test_the_default_precision_on_cpu_is_fp32_and_recorded(tmp_path: Path) -> None:
    s = train_lm(tiny_lm(), FakeLMStream(grammar_tokens(1500, 1)), None, LMSection(epochs=1, max_batches_per_epoch=3),
                 tmp_path, progress=False)
    assert s["precision"] == "fp32"


def test_train_classifier_and_predict_in_bf16_on_cpu(tmp_path: Path) -> None:
    torch.manual_seed(0)
    docs, labels = clf_data(40, 0)
    model = tiny_clf()
    losses = []
    s = train_classifier(model, FakeClassifierBatches(docs, labels, bs=8), FakeClassifierBatches(docs, labels, bs=8),
                         ClassifierConfig(epochs=2, checkpoint_minutes=1e9), tmp_path, n_classes=2, progress=False,
                         precision="bf16",
                         on_step=lambda info: losses.append({p.dtype for p in info["model"].parameters()}))
    assert s["precision"] == "bf16" and math.isfinite(s["train_loss"]) and math.isfinite(s["valid_loss"])
    assert losses and all(dtypes == {torch.float32} for dtypes in losses)
    p = predict_proba(model, FakeClassifierBatches(docs, None, bs=8, shuffle=False), precision="bf16")
    assert p.dtype == np.float32 and np.isfinite(p).all() and np.allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("value, has, expected", [("bf16", False, "bf16"), ("auto", True, "bf16"),
                                                   ("auto", False, "fp32"), ("cuda-bf16", True, "fp32")])
def test_the_stages_jobs_pass_the_resolved_precision(tmp_path, monkeypatch, native_bf16, value, has, expected) -> None:
    import ulmfit_multi.train as train_module
    from ulmfit_multi.jobs import finetune_direction

    native_bf16(has)
    seen = {}
    monkeypatch.setattr(train_module, "train_lm", lambda *a, **kw: seen.update(kw))
    cfg = load_recipe("mr", "smoke", [f'model.precision="{value}"'])
    finetune_direction(cfg, np.arange(5000) % 50, 50, None, "fwd", tmp_path, device="cpu", progress=False)
    assert seen["precision"] == expected
