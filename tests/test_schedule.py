"""Schedules: exact values from the ULMFiT paper."""

import math

import pytest

from ulmfit_multi.schedule import discriminative_lrs, stage_peak_lrs, stlr, unfreeze_plan


def test_stlr_paper_eq3_exact():
    T, lr = 1000, 0.01  # cut = 100
    assert stlr(0, T, lr) == pytest.approx(lr / 32)
    assert stlr(100, T, lr) == pytest.approx(lr)  # peak at cut_frac * T
    assert stlr(T, T, lr) == pytest.approx(lr / 32)
    assert stlr(50, T, lr) == pytest.approx(lr * (1 + 0.5 * 31) / 32)  # p = t / cut
    p = 1 - (550 - 100) / (100 * (1 / 0.1 - 1))
    assert stlr(550, T, lr) == pytest.approx(lr * (1 + p * 31) / 32)
    lrs = [stlr(t, T, lr) for t in range(T + 1)]
    assert max(lrs) == lrs[100] and all(a < b for a, b in zip(lrs[:100], lrs[1:101]))
    assert all(a > b for a, b in zip(lrs[100:], lrs[101:]))


def test_stlr_other_params_and_guards():
    assert stlr(0, 200, 1.0, cut_frac=0.2, ratio=10) == pytest.approx(0.1)
    assert stlr(40, 200, 1.0, cut_frac=0.2, ratio=10) == pytest.approx(1.0)
    assert stlr(0, 3, 1.0) == pytest.approx(1 / 32) and stlr(1, 3, 1.0) == pytest.approx(1.0)  # cut = 1
    assert min(stlr(t, 25, 1.0) for t in range(26)) == pytest.approx(1 / 32)  # clamped, never below lr/ratio


def test_discriminative_lrs():
    lrs = discriminative_lrs(0.01, 5)
    assert lrs[-1] == 0.01
    for k in range(5):
        assert lrs[4 - k] == pytest.approx(0.01 / 2.6**k)
    assert discriminative_lrs(1.0, 3, factor=2.0) == [0.25, 0.5, 1.0]
    assert math.isclose(discriminative_lrs(0.01, 5)[0], 0.01 / 2.6**4)  # fastai slice(lr/2.6**4, lr)


def test_unfreeze_plan():
    assert unfreeze_plan(5, 4) == [1, 2, 3, 5]  # fastai ULMFiT: freeze, -2, -3, unfreeze
    assert unfreeze_plan(5, 7) == [1, 2, 3, 4, 5, 5, 5]
    assert unfreeze_plan(4, 1) == [4]
    assert unfreeze_plan(4, 0) == []


def test_stage_peak_lrs_one_value_per_unfreezing_stage():
    fastai = [2e-2, 1e-2, 5e-3, 1e-3]
    assert stage_peak_lrs([1, 2, 3, 5], 0.01, fastai) == fastai  # freeze, -2, -3, unfreeze
    # the fully unfrozen stage spans several epochs and keeps its value; a short list repeats its last one
    assert stage_peak_lrs([1, 2, 3, 4, 5, 5, 5], 0.01, fastai) == [2e-2, 1e-2, 5e-3, 1e-3, 1e-3, 1e-3, 1e-3]
    assert stage_peak_lrs([5, 5, 5], 0.01, fastai) == [2e-2] * 3  # no gradual unfreezing: one stage
    assert stage_peak_lrs([1, 2, 5], 0.01) == [0.01] * 3  # empty list: `lr` everywhere
