"""Label budgets (subsets.py): stratified, seeded, nested subsets of a split's rows, and the valid cap."""

from __future__ import annotations

import numpy as np
import pytest

from ulmfit_multi.subsets import budget_rows, budget_size, capped_rows, stratified_order


def imbalanced(n: int = 1000, seed: int = 0) -> np.ndarray:
    """60% class 0, 30% class 1, 10% class 2, shuffled (task files are often sorted by label)."""
    labels = np.repeat([0, 1, 2], [n * 6 // 10, n * 3 // 10, n // 10])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("budget", [10, 30, 100, 300, 999])
def test_a_budget_keeps_the_class_proportions(budget: int) -> None:
    labels = imbalanced()
    rows = budget_rows(labels, budget, seed=0)
    assert len(rows) == budget and len(set(rows.tolist())) == budget
    assert np.all(np.diff(rows) > 0)  # sorted row indices
    counts = np.bincount(labels[rows], minlength=3)
    assert np.all(np.abs(counts - budget * np.array([0.6, 0.3, 0.1])) <= 2), counts


def test_every_prefix_of_the_order_is_stratified() -> None:
    labels = imbalanced(500, seed=3)
    share = np.bincount(labels) / len(labels)
    counts = np.zeros(3)
    for i, row in enumerate(stratified_order(labels, seed=5), 1):
        counts[labels[row]] += 1
        assert np.all(np.abs(counts - i * share) <= 2)


def test_every_class_is_present_once_the_budget_reaches_the_class_count() -> None:
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2, 3], [970, 20, 8, 2]))  # one class of 2 rows
    for seed in range(5):
        assert set(labels[budget_rows(labels, 4, seed)].tolist()) == {0, 1, 2, 3}
        assert set(labels[budget_rows(labels, 10, seed)].tolist()) == {0, 1, 2, 3}


def test_the_same_seed_draws_the_same_rows_and_another_seed_others() -> None:
    labels = imbalanced()
    np.testing.assert_array_equal(budget_rows(labels, 100, seed=0), budget_rows(labels, 100, seed=0))
    np.testing.assert_array_equal(budget_rows(labels.copy(), 100, seed=7), budget_rows(labels, 100, seed=7))
    assert not np.array_equal(budget_rows(labels, 100, seed=0), budget_rows(labels, 100, seed=1))


def test_budgets_are_nested_for_one_seed() -> None:
    labels = imbalanced()
    for seed in (0, 1, 2):
        previous: set[int] = set()
        for budget in (3, 10, 100, 300, 700, "all"):
            rows = set(budget_rows(labels, budget, seed).tolist())
            assert previous <= rows, (seed, budget)
            previous = rows


def test_all_is_every_row_and_a_budget_above_the_split_clips_to_it() -> None:
    labels = imbalanced(200)
    np.testing.assert_array_equal(budget_rows(labels, "all", seed=4), np.arange(200))
    np.testing.assert_array_equal(budget_rows(labels, 5000, seed=4), np.arange(200))
    np.testing.assert_array_equal(budget_rows(labels, 200, seed=4), np.arange(200))
    assert (budget_size("all", 200), budget_size(5000, 200), budget_size(30, 200)) == (200, 200, 30)
    for bad in (0, -3, "most", True):
        with pytest.raises(ValueError, match="label budget"):
            budget_size(bad, 200)


def test_the_valid_cap_subsamples_stratified_and_nested_and_leaves_a_small_split_whole() -> None:
    valid = imbalanced(300, seed=9)
    assert capped_rows(valid, 300, seed=0) is None and capped_rows(valid, 1000, seed=0) is None  # all of it
    small, larger = capped_rows(valid, 30, seed=0), capped_rows(valid, 100, seed=0)
    assert len(small) == 30 and len(larger) == 100 and set(small.tolist()) <= set(larger.tolist())
    np.testing.assert_array_equal(np.bincount(valid[small], minlength=3), [18, 9, 3])
    assert not np.array_equal(small, capped_rows(valid, 30, seed=1))
