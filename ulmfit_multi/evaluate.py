"""Metrics (scikit-learn), the forward+backward ensemble, late fusion with a baseline, and prediction files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, weighted F1 (the DravidianCodeMix official metric) and macro F1, as fractions."""
    from sklearn.metrics import accuracy_score, f1_score

    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def ensemble_proba(probas: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the directions' class probabilities (ULMFiT's bidirectional result)."""
    return np.mean(np.stack(probas), axis=0)


def _log_proba(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, 1e-12, None))  # a probability of exactly 0 would give -inf


def tune_class_bias(proba: np.ndarray, y_true: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float], *,
                    grid: np.ndarray | None = None, rounds: int = 3) -> np.ndarray:
    """Per-class offsets b added to log-probabilities that maximize `score(y, argmax(log p + b))`.

    Coordinate ascent over `grid` (default -3..3 in steps of 0.1), one class at a time, starting from
    zero; the zero offset is always a candidate, so the score on these rows never gets worse. Meant to
    be fitted on the validation split: with a metric such as weighted F1 on imbalanced classes, argmax of
    a cross-entropy model favours the majority class, and a prior shift trades that back.
    """
    grid = np.round(np.arange(-3.0, 3.01, 0.1), 2) if grid is None else np.asarray(grid, dtype=float)
    logp = _log_proba(proba)
    bias = np.zeros(proba.shape[1])
    best = score(y_true, logp.argmax(1))
    for _ in range(rounds):
        improved = False
        for c in range(proba.shape[1]):
            for d in grid:
                trial = bias.copy()
                trial[c] = d
                s = score(y_true, (logp + trial).argmax(1))
                if s > best + 1e-12:
                    best, bias, improved = s, trial, True
        if not improved:
            break
    return bias


def apply_class_bias(proba: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Probabilities renormalized after adding `bias` to their logarithms (softmax(log p + b))."""
    z = _log_proba(proba) + bias
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def tune_fusion_weight(proba_a: np.ndarray, proba_b: np.ndarray, y_true: np.ndarray,
                       score: Callable[[np.ndarray, np.ndarray], float], *, grid: np.ndarray | None = None) -> float:
    """The weight w in [0, 1] of `proba_a` that maximizes `score(y, argmax(w a + (1 - w) b))`.

    Late fusion of two systems' class probabilities, meant to be fitted on the validation split. The grid
    (default 0, 0.1, ..., 1) is scanned from w = 1 down, so ties keep the larger weight on `proba_a`.
    """
    grid = np.round(np.arange(0.0, 1.01, 0.1), 2) if grid is None else np.asarray(grid, dtype=float)
    best_w, best = 1.0, -np.inf
    for w in sorted(grid, reverse=True):
        s = score(y_true, fuse_proba(proba_a, proba_b, float(w)).argmax(1))
        if s > best + 1e-12:
            best_w, best = float(w), s
    return best_w


def fuse_proba(proba_a: np.ndarray, proba_b: np.ndarray, weight: float) -> np.ndarray:
    """`weight * proba_a + (1 - weight) * proba_b` (both rows x classes, same class order)."""
    if proba_a.shape != proba_b.shape:
        raise ValueError(f"cannot fuse probabilities of shapes {proba_a.shape} and {proba_b.shape}")
    return weight * proba_a + (1.0 - weight) * proba_b


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def write_predictions(path: Path, ids: Sequence, y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> None:
    """CSV of id, true class, predicted class and each class probability."""
    import csv

    with atomic_write(path) as f:
        w = csv.writer(f)
        w.writerow(["id", "true", "pred", *[f"p_{c}" for c in classes]])
        for i, t, p in zip(ids, y_true, proba):
            w.writerow([i, classes[t] if t >= 0 else "", classes[int(np.argmax(p))], *[f"{x:.5f}" for x in p]])
