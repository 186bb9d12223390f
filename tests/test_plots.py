"""Plots write non-empty PNG files."""

from __future__ import annotations

import json

import numpy as np

from ulmfit_multi.plots import plot_confusion, plot_learning_curves

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def test_plot_confusion(tmp_path):
    cm = np.array([[50, 3, 2], [4, 40, 6], [1, 2, 45]])
    out = plot_confusion(cm, ["negative", "neutral", "positive"], tmp_path / "figs" / "cm.png", title="mahasent_gt")
    assert out == tmp_path / "figs" / "cm.png"
    assert _is_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["cm.png"]


def test_plot_confusion_all_zero(tmp_path):
    out = plot_confusion(np.zeros((2, 2), dtype=int), ["a", "b"], tmp_path / "z.png")
    assert _is_png(out)


def _history(path, with_acc=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"step": s, "train_loss": 5.0 - 0.1 * s} for s in range(0, 30, 3)]
    rows += [{"step": s, "valid_loss": 4.5 - 0.05 * s, **({"valid_accuracy": 0.4 + 0.01 * s} if with_acc else {})}
             for s in (10, 20, 29)]
    rows.append({"event": "done"})  # rows without a step are ignored
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_plot_learning_curves_one_file(tmp_path):
    hist = _history(tmp_path / "run" / "fwd" / "history.jsonl")
    out = plot_learning_curves(hist, tmp_path / "lc.png", title="classifier")
    assert _is_png(out)


def test_plot_learning_curves_several_files(tmp_path):
    files = [_history(tmp_path / d / "seed0" / "history.jsonl", with_acc=(d == "fwd")) for d in ("fwd", "bwd")]
    out = plot_learning_curves(files, tmp_path / "lc2.png")
    assert _is_png(out)


def test_plot_learning_curves_accepts_a_str_path(tmp_path):
    # a str is one file, not a sequence of one-character file names
    hist = _history(tmp_path / "history.jsonl")
    out = plot_learning_curves(str(hist), tmp_path / "lc3.png")
    assert _is_png(out)


def test_plot_learning_curves_bad_line_names_file_and_line(tmp_path):
    import pytest

    from ulmfit_multi.errors import DataError

    hist = tmp_path / "history.jsonl"
    hist.write_text('{"step": 1, "train_loss": 2.0}\n\n{"step": 2, "train_lo\n', encoding="utf-8")  # cut off mid-write
    with pytest.raises(DataError, match=r"history\.jsonl: line 3"):
        plot_learning_curves(hist, tmp_path / "lc.png")
    assert not (tmp_path / "lc.png").exists()
