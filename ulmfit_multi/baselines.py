"""Baselines trained on the same splits: majority class, TF-IDF + logistic regression, fastText."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# a word is a run of word characters and Indic letters with their combining vowel signs and viramas, which
# `\w` does not match (it would cut "मराठी" into "मर", "ठ"); the dandas U+0964/U+0965 are punctuation
WORD_PATTERN = r"(?u)(?:\w|[\u0900-\u0963\u0966-\u0dff\u200c\u200d])+"


def majority_baseline(train_labels: np.ndarray, n_test: int) -> np.ndarray:
    """Predict the most frequent training class for every test item."""
    return np.full(n_test, int(np.bincount(np.asarray(train_labels)).argmax()), dtype=np.int64)


def tfidf_logreg(train_texts: Sequence[str], train_labels: np.ndarray, test_texts: Sequence[str], *, seed: int = 0,
                 char_ngrams: tuple[int, int] = (1, 5), word_ngrams: tuple[int, int] = (1, 2),
                 max_features: int = 200_000, C: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Character (word-boundary) and word n-gram TF-IDF, then logistic regression; returns (pred, proba)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, max_features=max_features, sublinear_tf=True,
                        min_df=2),
        TfidfVectorizer(analyzer="word", ngram_range=word_ngrams, max_features=max_features, sublinear_tf=True,
                        token_pattern=WORD_PATTERN),
    )
    model = make_pipeline(features, LogisticRegression(C=C, max_iter=2000, random_state=seed))
    model.fit(list(train_texts), np.asarray(train_labels))
    proba = _full_proba(model.predict_proba(list(test_texts)), model.classes_, int(np.max(train_labels)) + 1)
    return proba.argmax(1), proba


def _full_proba(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(proba), max(n_classes, int(seen.max()) + 1)))
    out[:, seen] = proba
    return out


def fasttext_supervised(train_texts: Sequence[str], train_labels: np.ndarray, test_texts: Sequence[str], *,
                        seed: int = 0, epoch: int = 25, lr: float = 0.5, dim: int = 100, word_ngrams: int = 2,
                        minn: int = 2, maxn: int = 5, thread: int = 1,
                        workdir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """fastText supervised classifier (thread=1 makes it deterministic for a seed); returns (pred, proba)."""
    import fasttext

    n_classes = int(np.max(train_labels)) + 1
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "train.txt"
        # shuffled: task files are often sorted by label, and fastText's SGD reads the file in order
        order = np.random.default_rng(seed).permutation(len(train_texts))
        with open(path, "w", encoding="utf-8") as f:
            for i in order:
                f.write(f"__label__{int(train_labels[i])} {' '.join(train_texts[i].split())}\n")
        model = fasttext.train_supervised(str(path), epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams, minn=minn,
                                          maxn=maxn, thread=thread, seed=seed, verbose=0)
    # a list of strings: fasttext 0.9.3's single-string predict fails under NumPy 2
    labels, probs = model.predict([" ".join(t.split()) for t in test_texts], k=n_classes)
    proba = np.zeros((len(test_texts), n_classes))
    for row, (ls, ps) in enumerate(zip(labels, probs)):
        for label, p in zip(ls, ps):
            proba[row, int(label.replace("__label__", ""))] = p
    return proba.argmax(1), proba


BASELINES: dict[str, Callable] = {
    "majority": majority_baseline,
    "tfidf-lr": tfidf_logreg,
    "fasttext": fasttext_supervised,
}
