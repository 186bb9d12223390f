"""Metrics (scikit-learn), the forward+backward ensemble, and prediction files."""

from __future__ import annotations

from collections.abc import Sequence
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
