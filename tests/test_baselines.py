"""Baselines learn a separable synthetic task and are deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from ulmfit_multi.baselines import BASELINES, fasttext_supervised, majority_baseline, tfidf_logreg

CUES = [["nalla", "super", "semma", "mass"], ["mokka", "waste", "worst", "bore"], ["padam", "trailer", "paakalam"]]
FILLER = "intha la da ya song movie hero music vera level time bro".split()


def _synthetic(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Three classes, each with its own cue words among shared filler; ~10 tokens a text (thousands in all)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    texts = []
    for y in labels:
        words = list(rng.choice(FILLER, 7)) + list(rng.choice(CUES[y], 3))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    train = _synthetic(600, 0)
    test = _synthetic(150, 1)
    return train, test


def test_registry():
    assert BASELINES == {"majority": majority_baseline, "tfidf-lr": tfidf_logreg, "fasttext": fasttext_supervised}


def test_majority():
    pred = majority_baseline(np.array([2, 0, 2, 1, 2, 0]), 4)
    assert pred.tolist() == [2, 2, 2, 2]
    assert pred.dtype == np.int64
    assert majority_baseline(np.array([1, 1, 0]), 0).shape == (0,)


def test_tfidf_logreg_learns_and_is_deterministic(data):
    (tr_x, tr_y), (te_x, te_y) = data
    pred, proba = tfidf_logreg(tr_x, tr_y, te_x, seed=0)
    assert proba.shape == (len(te_x), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(pred, proba.argmax(1))
    assert (pred == te_y).mean() > 0.9  # chance is 1/3
    pred2, proba2 = tfidf_logreg(tr_x, tr_y, te_x, seed=0)
    np.testing.assert_array_equal(pred, pred2)
    np.testing.assert_allclose(proba, proba2)


def test_tfidf_proba_has_a_column_per_class_up_to_the_largest_label():
    texts = ["aa bb", "aa cc", "dd ee", "dd ff"] * 5
    labels = np.array([0, 0, 2, 2] * 5)  # class 1 never seen in training
    pred, proba = tfidf_logreg(texts, labels, ["aa bb", "dd ee"])
    assert proba.shape == (2, 3)
    assert (proba[:, 1] == 0).all()
    assert pred.tolist() == [0, 2]


def test_fasttext_learns_and_is_deterministic(data, tmp_path):
    (tr_x, tr_y), (te_x, te_y) = data
    pred, proba = fasttext_supervised(tr_x, tr_y, te_x, seed=3, epoch=10, workdir=tmp_path)
    assert proba.shape == (len(te_x), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-3)
    np.testing.assert_array_equal(pred, proba.argmax(1))
    assert (pred == te_y).mean() > 0.9
    pred2, proba2 = fasttext_supervised(tr_x, tr_y, te_x, seed=3, epoch=10, workdir=tmp_path)
    np.testing.assert_array_equal(pred, pred2)
    np.testing.assert_allclose(proba, proba2)
    assert list(tmp_path.iterdir()) == []  # the training file is removed


def test_fasttext_texts_with_newlines(data):
    # task texts can contain newlines (quoted fields): one fastText line per text all the same
    (tr_x, tr_y), _ = data
    tr_x = [t.replace(" ", "\n", 1) for t in tr_x]
    pred, proba = fasttext_supervised(tr_x, tr_y, ["nalla\nsuper semma", "mokka waste\r\nworst"], epoch=10)
    assert pred.tolist() == [0, 1]


def test_word_features_keep_indic_words_whole():
    import re

    from ulmfit_multi.baselines import WORD_PATTERN

    # `\w` alone cuts at vowel signs and viramas ("मराठी" -> "मर", "ठ")
    assert re.findall(WORD_PATTERN, "मराठी चित्रपट छान आहे। தமிழ் படம், ಚೆನ್ನಾಗಿದೆ!! super_da") == [
        "मराठी", "चित्रपट", "छान", "आहे", "தமிழ்", "படம்", "ಚೆನ್ನಾಗಿದೆ", "super_da"]
