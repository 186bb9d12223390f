"""Label-efficiency curves (the `curves` stage): how each system's test score grows with the number of labels.

For every label budget of `curves.budgets` (subsets.py: stratified, seeded, nested subsets of a task's train
split) and every seed of `evaluate.seeds`, the ULMFiT classifiers (each direction, and their ensemble) and
the baselines of `evaluate.baselines` are trained on that many labels only; the seed draws the subset and
seeds the model. LM fine-tuning is not redone: every budget starts from the LM the `finetune_lm` stage
fine-tuned on all of the task's text (train, valid, unlabeled; never a label), as ULMFiT does. The budget
that is the whole train split ("all", or a budget at least that large) is not trained again: its column
holds the run's own `evaluate` and `baselines` records, so it equals the results table seed by seed.

With `curves.valid = "cap"` a budget of k labels also picks the classifier's epoch and fits the
valid-tuned offsets (`classifier.calibrate`) on at most k valid rows (stratified, seeded, nested); with
"full" on the whole valid split. The "all" column uses the whole valid split either way, as the run did.

Outputs, under the stage folder:
    classifiers/<task>/n<k>/<direction>/seed<s>/   one classifier each, with done.json (a rerun skips it)
    classifiers/<task>/n<k>/rows-seed<s>.json      the train and valid rows that budget and seed used
    records.jsonl                                 result records, each with its "budget" (labels)
    curves-<task>.{md,csv,json,tex}               a table per task: systems x budgets (tables.write_tables)
    plots/curves-<task>.png                       score against labels, log x axis, seed spread shaded
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import read_json, write_json
from .builders import device_for
from .curves_config import budget_epochs
from .evaluate import compute_metrics, metric_fn, seed_system_probas
from .runfolder import command_line, make_record, read_records, recorded_invocation, write_records
from .envinfo import environment
from .stages import StageContext
from .subsets import ALL, budget_rows, budget_size, capped_rows
from .tables import SYSTEM_ORDER, aggregate

log = logging.getLogger("ulmfit_multi")
RECORDS = "records.jsonl"


def curve_sizes(budgets: list[int | str], n_train: int) -> list[int]:
    """The distinct numbers of train labels of a task's curve, ascending: budgets clipped to the split's
    `n_train` rows, "all" being all of them."""
    return sorted({budget_size(b, n_train) for b in budgets})


def column_label(k: int, n_train: int) -> str:
    """A budget's column in the curves table: "300 labels", or "all 2400 labels" for the whole split."""
    return f"all {k} labels" if k == n_train else f"{k} labels"


def ulmfit_systems(directions: list[str], calibrate: bool) -> list[str]:
    """The per-seed ULMFiT rows of a curve: each direction, their ensemble, and with `calibrate` their
    valid-tuned-bias twins (the same rows the evaluate stage scores per seed)."""
    plain = list(directions) + (["ensemble"] if len(directions) == 2 else [])
    return [f"ULMFiT {s}" for s in plain] + ([f"ULMFiT {s} + valid-tuned bias" for s in plain] if calibrate else [])


def run_curves(ctx: StageContext, task_dirs: dict[str, Path]) -> dict[str, Any]:
    """The `curves` stage: train and score every system at every budget of every task (`task_dirs`: the encoded
    tasks by name), write the records, a table and a plot per task; nothing at all without budgets."""
    cfg = ctx.cfg
    if not cfg.curves.budgets:
        return {"budgets": []}
    summary: dict[str, Any] = {"budgets": {}, "tables": {}, "classifiers_trained": 0}
    records: list[dict] = []
    for name, tdir in task_dirs.items():
        if not (tdir / "test").exists():
            continue
        n_train = len(np.load(tdir / "train" / "labels.npy"))
        sizes = curve_sizes(cfg.curves.budgets, n_train)
        task_records: list[dict] = []
        for k in sizes:
            if k == n_train:  # the whole split: the run's own results
                task_records += all_labels_records(ctx, name, tdir, n_train)
                continue
            for seed in cfg.evaluate.seeds:
                recs, trained = budget_records(ctx, name, tdir, k, seed)
                task_records += recs
                summary["classifiers_trained"] += trained
        summary["budgets"][name] = sizes
        summary["tables"][name] = write_curve_outputs(ctx, name, tdir, task_records, n_train)["md"].name
        records += task_records
    write_records(ctx.out / RECORDS, records)
    summary["records"] = len(records)
    return summary


def budget_records(ctx: StageContext, task: str, task_dir: Path, k: int, seed: int) -> tuple[list[dict], int]:
    """Train (or find finished) the classifiers of one task, budget of `k` labels and seed, train the
    baselines on the same labels; their test records and how many classifiers were trained now."""
    from .jobs import train_one_classifier

    cfg = ctx.cfg
    meta = read_json(task_dir / "task.json")
    n_classes = len(meta["classes"])
    score = metric_fn(meta["metric"], n_classes)
    y_train = np.load(task_dir / "train" / "labels.npy")
    train_rows = budget_rows(y_train, k, seed)
    valid_rows, y_valid = None, None
    if (task_dir / "valid").exists() and cfg.curves.valid == "cap":
        y_valid = np.load(task_dir / "valid" / "labels.npy")
        valid_rows = capped_rows(y_valid, k, seed)
    folder = ctx.out / "classifiers" / task / f"n{k}"
    write_json(folder / f"rows-seed{seed}.json", {"train": train_rows.tolist(),
                                                  "valid": None if valid_rows is None else valid_rows.tolist()})
    trained = 0
    epochs = budget_epochs(cfg.classifier.epochs, cfg.curves.min_steps, len(train_rows), cfg.classifier.batch_size)
    clf_cfg = dataclasses.replace(cfg, classifier=dataclasses.replace(cfg.classifier, epochs=epochs))
    for direction in cfg.pretrain.directions:
        out = folder / direction / f"seed{seed}"
        if (out / "done.json").exists():
            continue
        log.info("curves: %s, %d labels, %s, seed %d", task, k, direction, seed)
        result = train_one_classifier(
            clf_cfg, task_dir, ctx.input("encode"), ctx.input("finetune_lm") / task / direction / "model.pt", direction,
            seed, out, n_classes=n_classes, score=score, device=device_for(cfg), progress=ctx.progress,
            on_epoch=lambda rec, d=direction: ctx.emit({"event": "epoch", "task": task, "budget": k, "direction": d,
                                                        "seed": seed, **rec}),
            train_rows=train_rows, valid_rows=valid_rows)
        write_json(out / "done.json", result)
        trained += 1
    y_test = np.load(task_dir / "test" / "labels.npy")
    probas, _, _ = seed_system_probas(folder, task_dir, seed, cfg.pretrain.directions,
                                      calibrate=cfg.classifier.calibrate, score=score,
                                      y_valid=None if valid_rows is None else y_valid[valid_rows])

    def record(system: str, pred: np.ndarray) -> dict:
        return {**make_record(task, system, seed, compute_metrics(y_test, pred, n_classes), len(y_test),
                              preset=cfg.preset, note=meta.get("note", "")), "budget": k}

    records = [record(f"ULMFiT {system}", proba.argmax(1)) for system, proba in probas.items()]
    return records + baseline_budget_records(ctx, task_dir, train_rows, seed, record), trained


def baseline_budget_records(ctx: StageContext, task_dir: Path, train_rows: np.ndarray, seed: int,
                            record: Callable[[str, np.ndarray], dict]) -> list[dict]:
    """The baselines of `evaluate.baselines` trained on the budget's rows only (the texts and labels the
    baselines stage trains on, as the encode stage kept them) and scored on test; `record(system, pred)`."""
    from .baselines import BASELINES

    texts = read_json(task_dir / "train" / "texts.json")
    y_train = np.load(task_dir / "train" / "labels.npy")[train_rows]
    train_texts = [texts[i] for i in train_rows]
    test_texts = read_json(task_dir / "test" / "texts.json")
    out = []
    for system in ctx.cfg.evaluate.baselines:
        fn = BASELINES[system]
        if system == "majority":
            pred = fn(y_train, len(test_texts))
        else:
            pred, _ = fn(train_texts, y_train, test_texts, seed=seed)
        out.append(record(system, pred))
    return out


def all_labels_records(ctx: StageContext, task: str, task_dir: Path, n_train: int) -> list[dict]:
    """The whole train split's column: the evaluate stage's per-seed ULMFiT records and the baselines stage's
    records of the task (the systems a curve has), with their "budget"."""
    cfg = ctx.cfg
    ulmfit = set(ulmfit_systems(cfg.pretrain.directions, cfg.classifier.calibrate and (task_dir / "valid").exists()))
    seeds = set(cfg.evaluate.seeds)
    found = [r for r in read_records(ctx.input("evaluate") / RECORDS)
             if r["task"] == task and r["system"] in ulmfit and r["seed"] in seeds]
    found += [r for r in read_records(ctx.input("baselines") / RECORDS)
              if r["task"] == task and r["system"] in cfg.evaluate.baselines]
    return [{**r, "budget": n_train} for r in found]


def write_curve_outputs(ctx: StageContext, task: str, task_dir: Path, records: list[dict],
                        n_train: int) -> dict[str, Path]:
    """A task's curves table (markdown, csv, json, latex, through `tables.write_tables`: a column per budget)
    and its plot; returns the table paths."""
    from .notes import task_notes
    from .plots import plot_label_curves
    from .tables import write_tables

    cfg = ctx.cfg
    meta = read_json(task_dir / "task.json")
    metric = meta["metric"]
    sizes = sorted({r["budget"] for r in records})
    by_column = [{**r, "task": column_label(r["budget"], n_train)} for r in records]
    notes = []
    clipped = [b for b in cfg.curves.budgets if b != ALL and b >= n_train]
    if clipped:
        notes.append(f"curves.budgets {', '.join(map(str, clipped))}: no fewer labels than the train split's "
                     f"{n_train}, so the whole-split column")
    if n_train in sizes and "majority" in cfg.evaluate.baselines:
        notes.append("majority in the whole-split column: seed 0 only, as in the results table")
    notes += [n for n in task_notes({task: meta}) if n.startswith(f"{task} ")]
    paths = write_tables(by_column, [], ctx.out, title=f"{task}: test {metric} by number of training labels",
                         metric_by_task={column_label(k, n_train): metric for k in sizes},
                         header=curves_header(ctx, n_train), run_notes=notes, stem=f"curves-{task}")
    lines: dict[str, list[tuple[int, float, float]]] = {}
    for row in aggregate([{**r, "task": r["budget"]} for r in records]):  # grouped by (budget, system)
        lines.setdefault(row["system"], []).append((row["task"], 100 * row["mean"][metric], 100 * row["std"][metric]))
    order = {s: i for i, s in enumerate(SYSTEM_ORDER)}
    lines = dict(sorted(lines.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    plot_label_curves(lines, ctx.out / "plots" / f"curves-{task}.png", metric=metric,
                      title=f"{task} ({cfg.recipe.name}, {cfg.preset}): mean ± sd over {len(cfg.evaluate.seeds)} "
                            f"seed{'s' if len(cfg.evaluate.seeds) > 1 else ''}")
    return paths


def curves_header(ctx: StageContext, n_train: int) -> dict[str, str]:
    """The bullets above a curves table: the run, and what the columns are trained on."""
    cfg = ctx.cfg
    env = environment()
    invocation = recorded_invocation(ctx.run_dir)
    valid = ("the whole valid split at every budget (curves.valid = \"full\")" if cfg.curves.valid == "full" else
             "at a budget of k labels, a stratified, seeded subsample of at most k valid rows picks the classifier's "
             "epoch and fits the valid-tuned offsets (curves.valid = \"cap\"); the whole valid split in the "
             "whole-split column")
    return {
        "recipe": cfg.recipe.name, "preset": cfg.preset,
        "command": command_line(invocation) if invocation else f"ulmfit-multi curves {cfg.recipe.name} "
                                                                f"--preset {cfg.preset}",
        "code version": f"ulmfit_multi {env['ulmfit_multi']} ({env['git_commit'] or 'no git'})",
        "seeds": ", ".join(map(str, cfg.evaluate.seeds)) + " (a seed draws the label subset and seeds the model)",
        "labels": f"stratified, seeded, nested subsets of the {n_train} train labels (for one seed a smaller "
                  "budget's labels are part of every larger one's); the whole-split column is the run's own "
                  "classifier, evaluate and baselines results, not retrained",
        "LM fine-tuning": "unchanged at every budget: the LM fine-tuned on all of the task's text (train, valid, "
                          "unlabeled; no labels), as ULMFiT does; only classifiers and baselines see fewer labels",
        "valid split": valid,
        "classifier epochs": f"{cfg.classifier.epochs} (classifier.epochs)" if not cfg.curves.min_steps else
        ", ".join(f"{budget_epochs(cfg.classifier.epochs, cfg.curves.min_steps, k, cfg.classifier.batch_size)} at {k}"
                  for k in curve_sizes(cfg.curves.budgets, n_train) if k < n_train)
        + f" labels (at least curves.min_steps = {cfg.curves.min_steps} steps of {cfg.classifier.batch_size} labels; "
          f"classifier.epochs = {cfg.classifier.epochs}); the whole-split column as the run trained it",
    }


def curve_tables(stage_dir: Path) -> list[Path]:
    """The markdown curves tables a finished `curves` stage wrote, one per task (none without budgets)."""
    return sorted(Path(stage_dir).glob("curves-*.md"))
