"""A recipe's `[curves]` section: the label budgets of the label-efficiency curves and how valid is used.

The type and its checks live here (config.py imports them); the stage's work is in curves.py, the subsets
in subsets.py. Only the `curves` stage reads this section, so setting it changes no other stage's fingerprint.

    [curves]
    budgets = [100, 300, 1000, 3000, "all"]   # labels per task; empty (the default): no curves
    valid = "cap"                             # or "full"
    min_steps = 500                           # at least this many classifier steps at every budget (0: off)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RecipeError
from .subsets import ALL

VALID_MODES = ("cap", "full")


@dataclass
class CurvesConfig:
    """Label-efficiency curves: every classifier and baseline trained again on nested subsets of the labels."""

    # numbers of training labels per task, and/or "all" (the run's own results); empty: the stage does nothing
    budgets: list[int | str] = field(default_factory=list)
    # "cap": at a budget of k labels, valid (best epoch, valid-tuned offsets) is a stratified, seeded subsample of
    # at most k rows; "full": the whole valid split at every budget
    valid: str = "cap"
    # at a budget of k labels the classifier trains max(classifier.epochs, ceil(min_steps / batches per epoch))
    # epochs, so small budgets are not left with a handful of optimizer steps (20 for 100 labels at 5 epochs of
    # 32); 0: classifier.epochs everywhere. 500 lifted the Marathi ensembles by 0.6 to 6.2 points at 100 to 1,000
    # labels (docs/BENCHMARKS.md, "Label-efficiency curves")
    min_steps: int = 500


def check_curves(c: CurvesConfig, classes_by_task: dict[str, int], path: str | Path) -> None:
    """Budgets are distinct numbers of labels no smaller than any task's class count, or "all"; `valid` is
    a known mode. A RecipeError naming `path` and the key otherwise."""
    for b in c.budgets:
        if isinstance(b, str) and b != ALL:
            raise RecipeError(f"{path}: 'curves.budgets' holds {b!r}; expected numbers of labels or {ALL!r}")
        if isinstance(b, int) and b < 2:
            raise RecipeError(f"{path}: 'curves.budgets' holds {b}; expected numbers of labels >= 2")
        for task, n_classes in classes_by_task.items():
            if isinstance(b, int) and b < n_classes:
                raise RecipeError(f"{path}: 'curves.budgets' holds {b}, fewer labels than task '{task}' has "
                                  f"classes ({n_classes}); a budget has at least one label of each class")
    if len(set(c.budgets)) != len(c.budgets):
        raise RecipeError(f"{path}: 'curves.budgets' is {c.budgets}; a budget is named twice")
    if c.min_steps < 0:
        raise RecipeError(f"{path}: 'curves.min_steps' is {c.min_steps}; expected a number of steps >= 0 (0: off)")
    if c.valid not in VALID_MODES:
        raise RecipeError(f"{path}: 'curves.valid' is {c.valid!r}; expected one of {', '.join(VALID_MODES)}")


def budget_epochs(epochs: int, min_steps: int, n_labels: int, batch_size: int) -> int:
    """Classifier epochs at a budget of `n_labels`: `epochs`, or more when they would make fewer than
    `min_steps` optimizer steps (`batch_size` labels a step)."""
    per_epoch = math.ceil(n_labels / batch_size)
    return max(epochs, math.ceil(min_steps / per_epoch)) if min_steps else epochs
