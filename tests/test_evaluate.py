"""Metrics equal scikit-learn's; the bidirectional ensemble is the mean; prediction files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ulmfit_multi.evaluate import (
    apply_class_bias,
    compute_metrics,
    confusion,
    ensemble_proba,
    fuse_proba,
    tune_class_bias,
    tune_fusion_weight,
)


def _random_case(seed: int, n: int = 200, k: int = 5):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed):
    y_true, y_pred = _random_case(seed)
    m = compute_metrics(y_true, y_pred, 5)
    assert set(m) == {"accuracy", "weighted_f1", "macro_f1"}
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in m.values())


def test_metrics_with_a_class_never_predicted():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 0, 1, 0])  # class 2 never predicted: its F1 is 0, no warning-dependent NaN
    m = compute_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(3 / 7)
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_metrics_perfect_and_labels_argument():
    y = np.array([0, 1, 2, 1, 0])
    assert compute_metrics(y, y, 3) == {"accuracy": 1.0, "weighted_f1": 1.0, "macro_f1": 1.0}
    # a class of the task absent from this test slice is scored as sklearn scores it with labels=range(n)
    m = compute_metrics(y, y, 4)
    assert m["macro_f1"] == pytest.approx(f1_score(y, y, labels=[0, 1, 2, 3], average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(1.0)


def test_ensemble_is_the_mean():
    rng = np.random.default_rng(0)
    fwd = rng.dirichlet(np.ones(3), size=10)
    bwd = rng.dirichlet(np.ones(3), size=10)
    ens = ensemble_proba([fwd, bwd])
    np.testing.assert_allclose(ens, (fwd + bwd) / 2)
    np.testing.assert_allclose(ens.sum(1), 1.0)
    np.testing.assert_allclose(ensemble_proba([fwd]), fwd)


def test_confusion_rows_are_true_classes():
    y_true = np.array([0, 0, 1, 2])
    y_pred = np.array([0, 1, 1, 1])
    cm = confusion(y_true, y_pred, 4)
    assert cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3]))
    assert cm[0, 1] == 1 and cm[2, 1] == 1 and cm.sum() == 4


def _skewed(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes (70/20/10%) and probabilities that lean to class 0: argmax rarely says 2."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    logits = rng.normal(0, 1.0, size=(n, 3))
    logits[np.arange(n), y] += 1.5
    logits[:, 0] += 2.0  # the majority-class pull of a cross-entropy model
    p = np.exp(logits)
    return y, p / p.sum(1, keepdims=True)


def _wf1(y, pred):
    return f1_score(y, pred, labels=[0, 1, 2], average="weighted", zero_division=0)


def test_tuned_bias_never_lowers_the_fitted_score_and_carries_to_new_rows():
    y_valid, p_valid = _skewed(600, 0)
    y_test, p_test = _skewed(2000, 1)
    bias = tune_class_bias(p_valid, y_valid, _wf1)
    assert bias.shape == (3,)
    assert _wf1(y_valid, (np.log(p_valid) + bias).argmax(1)) >= _wf1(y_valid, p_valid.argmax(1))
    assert bias[0] < max(bias[1], bias[2])  # it moves mass away from the majority class
    tuned = apply_class_bias(p_test, bias)
    assert _wf1(y_test, tuned.argmax(1)) > _wf1(y_test, p_test.argmax(1)) + 0.02  # held-out rows gain too
    assert (tuned.argmax(1) == 2).sum() > (p_test.argmax(1) == 2).sum()


def test_apply_class_bias_renormalizes_and_zero_is_identity():
    _, p = _skewed(50, 2)
    np.testing.assert_allclose(apply_class_bias(p, np.zeros(3)), p, atol=1e-12)
    q = apply_class_bias(p, np.array([0.0, 1.0, -2.0]))
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-12)


def test_tuned_bias_is_zero_when_argmax_is_already_perfect():
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.eye(3)[y] * 0.8 + 0.2 / 3
    np.testing.assert_array_equal(tune_class_bias(p, y, _wf1), np.zeros(3))


def _weighted_f1(y, pred):
    return f1_score(y, pred, average="weighted", zero_division=0)


def test_fusion_weight_follows_the_better_system():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.eye(3)[y] * 0.6 + 0.4 / 3  # argmax is always right
    noise = rng.dirichlet(np.ones(3), 300)  # argmax is chance
    assert tune_fusion_weight(good, noise, y, _weighted_f1) == 1.0
    w = tune_fusion_weight(noise, good, y, _weighted_f1)  # the largest weight on noise that still gets all right
    assert 0.0 < w < 0.5 and _weighted_f1(y, fuse_proba(noise, good, w).argmax(1)) == 1.0
    assert _weighted_f1(y, fuse_proba(noise, good, w + 0.1).argmax(1)) < 1.0
    assert tune_fusion_weight(good, good, y, _weighted_f1) == 1.0  # ties keep the first system


def test_fusion_can_beat_both_systems():
    # a knows classes 0 and 1 apart but not 2; b knows 2 but mixes 0 and 1: only their mean gets all right
    y = np.array([0, 1, 2] * 20)
    a = np.array([[0.6, 0.1, 0.3], [0.1, 0.6, 0.3], [0.45, 0.1, 0.45]] * 20)
    b = np.array([[0.3, 0.3, 0.4], [0.3, 0.3, 0.4], [0.0, 0.0, 1.0]] * 20)
    w = tune_fusion_weight(a, b, y, _weighted_f1)
    fused = fuse_proba(a, b, w)
    assert 0.0 < w < 1.0
    assert _weighted_f1(y, fused.argmax(1)) == 1.0 > max(_weighted_f1(y, a.argmax(1)), _weighted_f1(y, b.argmax(1)))
    np.testing.assert_allclose(fused.sum(1), 1.0)


def test_fuse_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        fuse_proba(np.ones((2, 3)) / 3, np.ones((2, 4)) / 4, 0.5)
