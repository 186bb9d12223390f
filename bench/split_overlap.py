"""Texts shared between the splits of a recipe's tasks: how many of each test split's texts also occur,
after the same normalization the pipeline applies, in each train / valid / unlabeled split.

Usage:
    python bench/split_overlap.py ta --mirror ../shared/data
    python bench/split_overlap.py ml mr --mirror ../shared/data

Datasets re-use comments across releases (FIRE 2021's train split holds most of FIRE 2020's test
comments), so a recipe that puts every task's text into one LM corpus must drop them: the corpus stage
does, and reports `task_text_dropped_test_overlap` in its summary. This script shows where they come from.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ulmfit_multi.atomic import read_json  # noqa: E402
from ulmfit_multi.config import load_recipe  # noqa: E402
from ulmfit_multi.pipeline import load_tasks, prepare_text, run_recipe  # noqa: E402


def split_overlap(recipe: str, mirror: str | None, preset: str = "cpu") -> list[tuple[str, str, int, str, int, int]]:
    """Rows (task, split, split size, test task, test size, shared texts) for every pair with shared texts."""
    with tempfile.TemporaryDirectory() as work:
        run = run_recipe(recipe, preset=preset, mirror=mirror, work_dir=work, until="fetch", progress=False)
        fetched = read_json(run.run_dir / "01-fetch" / "fetched.json")
        tasks = load_tasks(load_recipe(recipe, preset), fetched)
    tests = {n: {prepare_text(t) for t in d.splits["test"].texts} for n, d in tasks.items() if "test" in d.splits}
    rows = []
    for name, data in tasks.items():
        for role, split in data.splits.items():
            if role == "test":
                continue
            texts = {prepare_text(t) for t in split.texts}
            for test_name, test in tests.items():
                if shared := len(texts & test):
                    rows.append((name, role, len(texts), test_name, len(test), shared))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: print one Markdown table per recipe."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+")
    ap.add_argument("--mirror", default=None)
    ap.add_argument("--preset", default="cpu")
    a = ap.parse_args(argv)
    for recipe in a.recipes:
        print(f"\n{recipe}\n\n| split | distinct texts | test split | distinct texts | shared |\n|---|---|---|---|---|")
        for name, role, n, test_name, n_test, shared in split_overlap(recipe, a.mirror, a.preset):
            print(f"| {name}/{role} | {n:,} | {test_name}/test | {n_test:,} | {shared:,} ({100 * shared / n_test:.1f}% of test) |")


if __name__ == "__main__":
    main()
