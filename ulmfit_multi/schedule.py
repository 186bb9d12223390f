"""ULMFiT learning-rate schedules as pure functions (Howard & Ruder 2018, arXiv 1801.06146, section 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def stlr(step: int, total_steps: int, lr_max: float, cut_frac: float = 0.1, ratio: float = 32) -> float:
    """Slanted triangular learning rate, paper eq. 3: rises for cut_frac*T steps, then decays to lr_max/ratio.

    cut = floor(T * cut_frac); p = t/cut before the cut, else 1 - (t-cut)/(cut*(1/cut_frac - 1));
    lr = lr_max * (1 + p*(ratio-1)) / ratio. Two guards the paper leaves implicit: a cycle shorter than
    1/cut_frac steps uses cut = 1, and p is clamped at 0, since with the floor the decay reaches
    lr_max/ratio at t = cut/cut_frac <= T and would otherwise keep falling (even below zero).
    """
    cut = max(1, math.floor(total_steps * cut_frac))
    if step < cut:
        p = step / cut
    else:
        p = 1 - (step - cut) / (cut * (1 / cut_frac - 1))
    p = max(p, 0.0)
    return lr_max * (1 + p * (ratio - 1)) / ratio


def discriminative_lrs(lr: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """Per-group lrs bottom to top: the top group gets `lr`, the group k below it lr/factor**k."""
    return [lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]


def unfreeze_plan(n_groups: int, epochs: int) -> list[int]:
    """Trainable top groups per epoch: 1, 2, ... one more each epoch; the last epoch always trains all.

    With the classifier's 5 groups and 4 epochs this is [1, 2, 3, 5], exactly fastai's ULMFiT recipe
    (freeze, freeze_to(-2), freeze_to(-3), unfreeze); with more epochs it is 1, 2, ..., n, n, ...
    """
    plan = [min(e + 1, n_groups) for e in range(epochs)]
    if plan:
        plan[-1] = n_groups
    return plan


def stage_peak_lrs(plan: list[int], lr: float, stage_lrs: Sequence[float] = ()) -> list[float]:
    """Top-group peak lr of each epoch: `stage_lrs[k]` in the k-th unfreezing stage (the last value after
    the list ends), or `lr` throughout when `stage_lrs` is empty."""
    out, k = [], -1
    for e, n in enumerate(plan):
        if e == 0 or n != plan[e - 1]:
            k += 1
        out.append(float(stage_lrs[min(k, len(stage_lrs) - 1)]) if stage_lrs else lr)
    return out
