"""Stratified, seeded, nested subsets of a split's rows: the label budgets of the `curves` stage.

One seeded order of all rows is drawn per (labels, seed); a budget of k labels is its first k rows. So for
one seed a smaller budget's rows are part of every larger one's (nested), and two seeds draw two orders.
The order keeps each prefix stratified: the first rows are one of each class, the rest follow each class's
share of the split (every prefix holds each class within two rows of its proportional count), so every
class is present once the budget reaches the number of classes.

    rows = budget_rows(train_labels, 300, seed=0)       # sorted row indices, 300 of them
    budget_rows(train_labels, "all", seed=0)            # every row
    capped_rows(valid_labels, 300, seed=0)              # None when the valid split has <= 300 rows
"""

from __future__ import annotations

import numpy as np

ALL = "all"


def budget_size(budget: int | str, n_rows: int) -> int:
    """How many rows a budget takes from a split of `n_rows`: "all" and budgets above the split clip to it."""
    if budget == ALL:
        return n_rows
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"a label budget is a number >= 1 or {ALL!r}, not {budget!r}")
    return min(budget, n_rows)


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Every row index once, in the seeded order whose prefixes are the nested stratified subsets."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        # the i-th row of a class sits at the middle of its 1/n_c slice, so prefixes follow the class shares
        keys[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
        keys[rows[0]] = -1.0  # one row of every class comes first
    return np.lexsort((rng.random(len(labels)), keys))  # ties (equal shares) in a seeded order


def budget_rows(labels: np.ndarray, budget: int | str, seed: int) -> np.ndarray:
    """Sorted indices of the rows a budget takes: stratified, drawn by `seed`, nested across budgets."""
    n = len(labels)
    k = budget_size(budget, n)
    if k == n:
        return np.arange(n, dtype=np.int64)
    return np.sort(stratified_order(labels, seed)[:k]).astype(np.int64)


def capped_rows(labels: np.ndarray, cap: int, seed: int) -> np.ndarray | None:
    """At most `cap` rows of a split (stratified, seeded, nested as `budget_rows`); None when that is all of it."""
    if cap >= len(labels):
        return None
    return budget_rows(labels, cap, seed)
