"""Texts shared between the splits of a recipe's tasks.

Datasets re-use comments across releases: FIRE 2021's Tamil train split holds most of FIRE 2020's test
comments. The corpus stage keeps every test text of every task out of the LM corpus
(`corpus.tasks.all_test_texts`);
`ulmfit-multi overlap RECIPE` shows where shared texts are, split pair by split pair.

Usage:
    print(format_overlap(recipe_overlap("ta", preset="cpu", mirror="../shared/data")))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .corpus.tasks import load_tasks, test_sets
from .runfolder import RunFolder


def split_overlap(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (non-test split, test split) pair sharing at least one distinct normalized text."""
    tests = test_sets(tasks)
    rows = []
    for name, data in tasks.items():
        for role, split in data.splits.items():
            if role == "test":
                continue
            texts = set(data.prepared(role))
            for test_name, test in tests.items():
                if shared := len(texts & test):
                    rows.append(dict(split=f"{name}/{role}", n=len(texts), test=f"{test_name}/test", n_test=len(test),
                                     shared=shared))  # fmt: skip
    return rows


def format_overlap(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of `split_overlap` rows."""
    lines = ["| split | distinct texts | test split | distinct texts | shared |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['split']} | {r['n']:,} | {r['test']} | {r['n_test']:,} | "
                     f"{r['shared']:,} ({100 * r['shared'] / r['n_test']:.1f}% of test) |")  # fmt: skip
    if not rows:
        lines.append("| (no shared texts) | | | | |")
    return "\n".join(lines)


def recipe_overlap(name: str, *, preset: str = "cpu", overrides: list[str] | None = None,
                   mirror: str | Path | None = None, data_dir: str | Path | None = None,
                   work_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """`split_overlap` of a recipe's tasks, after its fetch stage (run or reused)."""
    from .atomic import read_json
    from .pipeline import run_recipe

    result = run_recipe(name, preset=preset, overrides=overrides, mirror=mirror, data_dir=data_dir,
                        work_dir=work_dir, until="fetch", progress=False)
    run = RunFolder(result.run_dir)
    return split_overlap(load_tasks(run.config(), read_json(run.stage_dir("fetch") / "fetched.json")))
