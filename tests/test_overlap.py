"""Shared texts between task splits: counted after the pipeline's normalization, formatted as a table."""

from __future__ import annotations

import numpy as np

from ulmfit_multi.config import Task
from ulmfit_multi.corpus.tasks import Split, TaskData, all_test_texts
from ulmfit_multi.overlap import format_overlap, split_overlap


def _task(**splits: list[str]) -> TaskData:
    return TaskData(Task(name="t", lang="ta"), ["a"], {
        role: Split(texts, np.zeros(len(texts), dtype=np.int64), None) for role, texts in splits.items()}, {})


def test_one_release_test_comments_in_the_next_release_train_split() -> None:
    tasks = {
        "y2020": _task(train=["a b", "c d"], valid=["e f"], test=["g h", "i j", "k l"]),
        # the 2021 train re-uses two 2020 test comments, one with extra spaces (normalization makes them equal)
        "y2021": _task(train=["g h", " i j ", "m n"], test=["a b", "o p"]),
    }
    rows = split_overlap(tasks)
    assert {(r["split"], r["test"]): r["shared"] for r in rows} == {
        ("y2020/train", "y2021/test"): 1,
        ("y2021/train", "y2020/test"): 2,
    }
    assert all_test_texts(tasks) == {"g h", "i j", "k l", "a b", "o p"}
    table = format_overlap(rows)
    assert "| y2021/train | 3 | y2020/test | 3 | 2 (66.7% of test) |" in table
    assert "(no shared texts)" in format_overlap(split_overlap({"t": _task(train=["x"], test=["y"])}))
