"""Plots people would rather look at than read: confusion matrices, learning curves and label-efficiency
curves (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import DataError


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, *, title: str = "") -> Path:
    """Confusion matrix heat map with counts; rows are true classes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(history_jsonl: str | Path | list[Path], path: Path, *, title: str = "") -> Path:
    """Train and valid loss, and the valid task metric when present, against steps; one line per history file."""
    plt = _plt()
    files = [history_jsonl] if isinstance(history_jsonl, (str, Path)) else list(history_jsonl)  # a str is one file
    histories = [(f, _read_jsonl(Path(f))) for f in files]  # read (and validate) before opening a figure
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for f, rows in histories:
        label = Path(f).parent.parent.name if len(files) > 1 else ""
        train = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None and "step" in r]
        valid = [(r["step"], r["valid_loss"]) for r in rows if r.get("valid_loss") is not None and "step" in r]
        key = "valid_score" if any(r.get("valid_score") is not None for r in rows) else "valid_accuracy"
        acc = [(r["step"], r[key]) for r in rows if r.get(key) is not None and "step" in r]
        if train:
            axes[0].plot(*zip(*train), label=f"{label} train".strip())
        if valid:
            axes[0].plot(*zip(*valid), "o-", label=f"{label} valid".strip())
        if acc:
            axes[1].plot(*zip(*acc), "o-", label=label or "valid")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("valid task metric (accuracy in older runs)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_label_curves(lines: dict[str, list[tuple[int, float, float]]], path: Path, *, metric: str = "accuracy",
                      title: str = "") -> Path:
    """Score against the number of training labels (log x axis): per system, `[(labels, mean, std), ...]` in
    percent, the mean as a line and mean ± std shaded."""
    plt = _plt()
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for system, points in lines.items():
        points = sorted(points)
        x = np.array([p[0] for p in points], dtype=float)
        mean = np.array([p[1] for p in points])
        std = np.array([p[2] for p in points])
        (line,) = ax.plot(x, mean, "o-", label=system)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    budgets = sorted({p[0] for points in lines.values() for p in points})
    ax.xaxis.set_minor_locator(NullLocator())  # the budgets are the ticks
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("training labels (log scale)")
    ax.set_ylabel(f"test {metric} (%)")
    ax.grid(True, which="both", alpha=0.3)
    if lines:
        ax.legend(fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _read_jsonl(path: Path) -> list[dict]:
    """Rows of a history file; a line that is not a JSON object raises DataError naming the file and line."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i}: expected a JSON object")
        rows.append(row)
    return rows


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    _plt().close(fig)
    return path
