"""Screen a classifier setting: train one classifier (or both directions and their ensemble) from a finished
run's fine-tuned LM, with `classifier.*` settings overridden, and score it on the valid and test splits.

The `classifier` stage trains every task x direction x seed; a trial trains one task's classifiers for one
seed, so a setting can be tried in minutes before it goes into the recipe. The run folder is only read:
training happens in a temporary folder, or in `out` when given.

Usage:
    ulmfit-multi trial work/runs/ta-cpu fire2020-ta --set classifier.epochs=12 --set classifier.drop_mult=0.1
    ulmfit-multi trial work/runs/ta-cpu fire2020-ta --direction both --seed 1 --out trials/ta-12ep

    from ulmfit_multi.trial import classifier_trial
    result = classifier_trial("work/runs/ta-cpu", "fire2020-ta", overrides=["classifier.epochs=12"])
    result["systems"]["fwd"]["test"]
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import ClassifierConfig, Config, check_training_values
from .errors import RecipeError, StageError
from .runfolder import RunFolder
from .schema import deep_merge, from_dict, parse_override, suggest

DIRECTIONS = {"fwd": ("fwd",), "bwd": ("bwd",), "both": ("fwd", "bwd")}
TrialEpochHook = Callable[[str, dict[str, Any]], None]


def trial_config(run: RunFolder, overrides: Sequence[str]) -> Config:
    """The run's resolved config with `classifier.KEY=VALUE` overrides applied and validated like a recipe's
    `--set` (an unknown key is named, with a did-you-mean; a wrong type says what was expected)."""
    data = run.config_data()
    fields = [f.name for f in dataclasses.fields(ClassifierConfig)]
    for item in overrides:
        parsed = parse_override(item)
        if set(parsed) != {"classifier"}:
            key = item.split("=", 1)[0].strip()
            hint = f" (did you mean 'classifier.{key}'?)" if key in fields else ""
            raise RecipeError(f"--set {item!r}: a trial changes classifier settings only: "
                              f"--set classifier.KEY=VALUE{hint}")
        data = deep_merge(data, parsed)
    where = f"{run.path / 'config.resolved.toml'}" + (" (with --set)" if overrides else "")
    cfg: Config = from_dict(Config, data, where)
    check_training_values(cfg, where)
    return cfg


def _directions(direction: str, cfg: Config, random_encoder: bool) -> tuple[str, ...]:
    if direction not in DIRECTIONS:
        raise RecipeError(f"--direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")
    wanted = DIRECTIONS[direction]
    missing = [d for d in wanted if d not in cfg.pretrain.directions]
    if missing and not random_encoder:
        raise StageError(f"the run has no {' or '.join(missing)} language model (pretrain.directions = "
                         f"{cfg.pretrain.directions})")
    return wanted


def _check_out(out: Path, run: RunFolder, task: str, seed: int, directions: Sequence[str]) -> None:
    """`out` must be outside the run folder and must not already hold a trial of these classifiers."""
    resolved = out.resolve()
    if resolved == run.path.resolve() or run.path.resolve() in resolved.parents:
        raise StageError(f"--out {out}: inside the run folder {run.path}; a trial leaves the run untouched")
    for d in directions:
        target = out / task / d / f"seed{seed}"
        if target.exists() and any(target.iterdir()):
            raise StageError(f"--out {out}: {target} already holds a trial; pick another folder or remove it")


def _history(out: Path) -> list[list[float | None]]:
    """(train accuracy, valid score) per epoch, from the trainer's history.jsonl."""
    path = out / "history.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [[r.get("train_accuracy"), r.get("valid_score")] for r in records if r.get("kind") == "epoch"]


def classifier_trial(run: str | Path, task: str, *, overrides: Sequence[str] = (), seed: int = 0,
                     direction: str = "fwd", out: str | Path | None = None, device: str | None = None,
                     random_encoder: bool = False, progress: bool = False,
                     on_epoch: TrialEpochHook | None = None) -> dict[str, Any]:
    """Train `task`'s classifier(s) from the run's fine-tuned LM with classifier overrides; return the scores.

    `direction` is fwd, bwd or both (both: also their ensemble, the mean of their class probabilities).
    `random_encoder` starts from a random encoder instead of the LM (what pretraining adds). Scores are in the
    task's metric; a split the task lacks scores None. Training happens in a temporary folder, or in `out`
    (`<out>/<task>/<direction>/seed<seed>/`, plus `<out>/trial.json`), never in the run folder.
    `on_epoch(direction, record)` gets each finished epoch's history record.

    Returns {"run", "task", "metric", "seed", "set", "random_encoder", "device", "out", "systems"}, where
    systems maps fwd / bwd / ensemble to {"valid", "test"} (and for a direction "kept_epoch", "epochs":
    [[train accuracy, valid score], ...], "seconds").
    """
    import numpy as np

    from .atomic import read_json, write_json
    from .builders import device_for
    from .evaluate import ensemble_proba, metric_fn
    from .jobs import train_one_classifier

    folder = RunFolder(run)
    cfg = trial_config(folder, overrides)
    if device:
        cfg.runtime.device = device
    directions = _directions(direction, cfg, random_encoder)
    if out is not None:
        _check_out(Path(out), folder, task, seed, directions)
    encode_dir = folder.stage_dir("encode")
    tdir = encode_dir / "tasks" / task
    if not (tdir / "task.json").exists():
        known = sorted(p.parent.name for p in (encode_dir / "tasks").glob("*/task.json"))
        raise StageError(f"{folder.path}: no encoded task '{task}'{suggest(task, known or ['(none)'])}")
    finetune_dir = None if random_encoder else folder.stage_dir("finetune_lm")
    meta = read_json(tdir / "task.json")
    n_classes = len(meta["classes"])
    score = metric_fn(meta["metric"], n_classes)
    labels = {role: np.load(tdir / role / "labels.npy") for role in ("valid", "test") if (tdir / role).exists()}
    dev = device_for(cfg)

    systems: dict[str, dict[str, Any]] = {}
    probas: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="ulmfit-trial-") as tmp:
        root = Path(out) if out is not None else Path(tmp)
        for d in directions:
            lm_path = None if finetune_dir is None else finetune_dir / task / d / "model.pt"
            if lm_path is not None and not lm_path.exists():
                raise StageError(f"{folder.path}: no fine-tuned {d} LM for '{task}' ({lm_path})")
            dout = root / task / d / f"seed{seed}"
            started = time.perf_counter()
            hook = None if on_epoch is None else (lambda rec, d=d: on_epoch(d, rec))
            summary = train_one_classifier(cfg, tdir, encode_dir, lm_path, d, seed, dout,  # type: ignore[arg-type]
                                           n_classes=n_classes, score=score, device=dev, progress=progress,
                                           on_epoch=hook)
            probas[d] = {role: np.load(dout / f"proba_{role}.npy") for role in labels}
            test = score(labels["test"], probas[d]["test"].argmax(1)) if "test" in labels else None
            systems[d] = {"valid": summary.get("valid_score"), "test": test, "kept_epoch": summary.get("best_epoch"),
                          "epochs": _history(dout), "seconds": round(time.perf_counter() - started, 1)}
        if len(directions) == 2:
            systems["ensemble"] = {
                role: score(labels[role], ensemble_proba([probas[d][role] for d in directions]).argmax(1))
                if role in labels else None for role in ("valid", "test")}
        result = {"run": str(folder.path), "task": task, "metric": meta["metric"], "seed": seed,
                  "set": list(overrides), "random_encoder": random_encoder, "device": dev,
                  "out": None if out is None else str(out), "systems": systems}
        if out is not None:
            write_json(Path(out) / "trial.json", result)
    return result


def format_trial(result: dict[str, Any]) -> str:
    """A Markdown table of a trial's scores (percent, the task's metric), one row per system."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    settings = ", ".join(result["set"]) or "the run's own classifier settings"
    lines = [f"trial: {result['run']} {result['task']}, seed {result['seed']}, {settings}"
             + (", random encoder" if result["random_encoder"] else ""),
             "",
             f"| system | valid {result['metric']} | test {result['metric']} | kept epoch | "
             "per epoch (train acc / valid) | seconds |",
             "|---|---|---|---|---|---|"]
    for system, s in result["systems"].items():
        epochs = ", ".join(f"{pct(a)}/{pct(v)}" for a, v in s.get("epochs", []))
        kept = s.get("kept_epoch")
        lines.append(f"| {system} | {pct(s['valid'])} | {pct(s['test'])} | {'' if kept is None else kept} | "
                     f"{epochs} | {s.get('seconds', '')} |")
    return "\n".join(lines) + "\n"
