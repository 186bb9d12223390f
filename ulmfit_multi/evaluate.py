"""Metrics (scikit-learn) and the systems scored from class probabilities.

Per seed: forward, backward, their ensemble, each with valid-tuned class offsets when asked; across seeds:
one ensemble of every seed's classifiers; late fusion of a seed's ensemble with a saved baseline.
`task_system_probas` assembles all of them for one task; the evaluate stage and `partial_records` score it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import Config
from .errors import StageError


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


def metric_fn(metric: str, n_classes: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """score(y_true, y_pred) for a task's metric name (as in compute_metrics)."""
    return lambda y, pred: compute_metrics(y, pred, n_classes)[metric]


# ---------------------------------------------------------------- the systems of one task


def seed_system_probas(clf_task_dir: Path, task_dir: Path, seed: int, directions: Sequence[str], *,
                       calibrate: bool, score: Callable[[np.ndarray, np.ndarray], float],
                       y_valid: np.ndarray | None = None
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[float]]]:
    """Test- and valid-split class probabilities of each system for one task and seed, and the valid-tuned offsets.

    Systems: each direction whose classifier finished (`<clf_task_dir>/<direction>/seed<seed>`), their
    `ensemble` when both did, and with `calibrate` (and a valid split) each of those again with per-class
    offsets fitted on the valid split (`"<system> + valid-tuned bias"`). Valid probabilities are there for
    the plain systems when the task has a valid split. Reads a finished classifier stage or one still
    running, which is how `partial_records` peeks at a long stage. `y_valid`: the labels of the valid rows
    the classifiers scored when those were a subset of the split (the `curves` stage); default: the whole split.
    """
    has_valid = (task_dir / "valid").exists()
    probas, valid_probas = {}, {}
    for direction in directions:
        f = clf_task_dir / direction / f"seed{seed}" / "proba_test.npy"
        if f.exists():
            probas[direction] = np.load(f)
            if has_valid:
                valid_probas[direction] = np.load(f.with_name("proba_valid.npy"))
    if len(probas) == 2:
        probas["ensemble"] = ensemble_proba([probas["fwd"], probas["bwd"]])
        if has_valid:
            valid_probas["ensemble"] = ensemble_proba([valid_probas["fwd"], valid_probas["bwd"]])
    biases = add_biased(probas, valid_probas, task_dir, score, y_valid) if calibrate and has_valid else {}
    return probas, valid_probas, biases


def add_biased(probas: dict[str, np.ndarray], valid_probas: dict[str, np.ndarray], task_dir: Path,
               score: Callable[[np.ndarray, np.ndarray], float], y_valid: np.ndarray | None = None
               ) -> dict[str, list[float]]:
    """Add `"<system> + valid-tuned bias"` to `probas` for each system; returns the offsets. The offsets are
    fitted against `y_valid`, by default the task's whole valid split."""
    if y_valid is None:
        y_valid = np.load(task_dir / "valid" / "labels.npy")
    biases = {}
    for system in list(probas):
        bias = tune_class_bias(valid_probas[system], y_valid, score)
        biases[system] = bias.round(2).tolist()
        probas[f"{system} + valid-tuned bias"] = apply_class_bias(probas[system], bias)
    return biases


def pooled_seed_probas(per_seed: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], task_dir: Path, *,
                       calibrate: bool, score: Callable[[np.ndarray, np.ndarray], float]
                       ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """One ensemble of every seed's forward and backward classifiers (`"ensemble of N seeds"`), N >= 2.

    `per_seed` maps seed -> (test probas, valid probas) from `seed_system_probas`; seeds whose ensemble is
    not there (a direction unfinished) are left out. With `calibrate`, also its valid-tuned-bias twin.
    """
    seeds = [s for s, (test, _) in sorted(per_seed.items()) if "ensemble" in test]
    if len(seeds) < 2:
        return {}, {}
    system = f"ensemble of {len(seeds)} seeds"
    probas = {system: ensemble_proba([per_seed[s][0]["ensemble"] for s in seeds])}
    if not (task_dir / "valid").exists():
        return probas, {}
    valid = {system: ensemble_proba([per_seed[s][1]["ensemble"] for s in seeds])}
    return probas, (add_biased(probas, valid, task_dir, score) if calibrate else {})


def baseline_probas(baselines_dir: Path, task: str, system: str, seed: int, task_dir: Path
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(valid, test) class probabilities the baselines stage saved for a task, system and seed.

    Raises StageError when they are missing (a baselines stage from before it saved them) or were scored
    against other labels than the encode stage's (the two stages read the task files apart).
    """
    d = baselines_dir / "probas" / task / system / f"seed{seed}"
    out = []
    for role in ("valid", "test"):
        f = d / f"proba_{role}.npy"
        if not f.exists():
            raise StageError(f"{f}: no saved probabilities for fusing '{system}'; rerun the baselines stage "
                             f"(`--from baselines`) or remove it from evaluate.fuse_with")
        if not np.array_equal(np.load(d / f"labels_{role}.npy"), np.load(task_dir / role / "labels.npy")):
            raise StageError(f"{d}: the {role} labels differ from {task_dir / role / 'labels.npy'}; "
                             f"the baselines and encode stages read different task files")
        out.append(np.load(f))
    return out[0], out[1]


def fused_probas(test: dict[str, np.ndarray], valid: dict[str, np.ndarray], baseline: tuple[np.ndarray, np.ndarray],
                 name: str, task_dir: Path, score: Callable[[np.ndarray, np.ndarray], float]
                 ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """`"ensemble + <name>"`: the seed's ULMFiT ensemble averaged with a baseline, weight fitted on valid."""
    if "ensemble" not in test or "ensemble" not in valid:
        return {}, {}
    y_valid = np.load(task_dir / "valid" / "labels.npy")
    w = tune_fusion_weight(valid["ensemble"], baseline[0], y_valid, score)
    return {f"ensemble + {name}": fuse_proba(test["ensemble"], baseline[1], w)}, {f"ensemble + {name}": w}


def task_system_probas(cfg: Config, clf_task_dir: Path, task_dir: Path, baselines_dir: Path, *,
                       score: Callable[[np.ndarray, np.ndarray], float], fuse_with: Sequence[str]
                       ) -> tuple[dict[int | None, dict[str, np.ndarray]], dict[str, list[float]], dict[str, float]]:
    """Every system's test probabilities for one task: per seed, and under key None the pooled-seed ensemble.

    Per seed `seed_system_probas`, then each seed's ensemble fused with the `fuse_with` baselines (when the
    task has a valid split), then `pooled_seed_probas`. Also returns the valid-tuned offsets and the fusion
    weights, keyed `"<system>/seed<seed>"` (`"<system>/pooled"` for the pooled ensemble's offsets). The
    evaluate stage and `partial_records` both score these.
    """
    by_seed, per_seed, biases, weights = {}, {}, {}, {}
    for seed in cfg.evaluate.seeds:
        probas, valid_probas, seed_biases = seed_system_probas(
            clf_task_dir, task_dir, seed, cfg.pretrain.directions, calibrate=cfg.classifier.calibrate, score=score)
        per_seed[seed] = (probas, valid_probas)
        biases.update({f"{system}/seed{seed}": b for system, b in seed_biases.items()})
        for baseline in fuse_with if (task_dir / "valid").exists() else []:
            saved = baseline_probas(baselines_dir, task_dir.name, baseline, seed, task_dir)
            fused, w = fused_probas(probas, valid_probas, saved, baseline, task_dir, score)
            probas.update(fused)
            weights.update({f"{system}/seed{seed}": v for system, v in w.items()})
        by_seed[seed] = probas
    pooled, pooled_biases = pooled_seed_probas(per_seed, task_dir, calibrate=cfg.classifier.calibrate, score=score)
    biases.update({f"{system}/pooled": b for system, b in pooled_biases.items()})
    by_seed[None] = pooled
    return by_seed, biases, weights
