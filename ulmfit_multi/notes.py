"""What a run skipped, dropped, truncated or could not get, read from what its stages recorded.

These lines are the results table's footnotes and what `ulmfit-multi recipe` prints at the end of a run.
None is fixed text from a recipe; each comes from a stage's record:

    fetch   fetched.json               input files that were not available
    corpus  _stage.json summary        dumps cut short and kept (corpus.keep_truncated), sources read only in
                                       part (corpus.max_docs_per_source), task texts left out of the LM corpus
                                       because they equal a test text
    encode  tasks/<task>/task.json     bad rows skipped (on_bad_row = "skip"), splits sampled (data.max_task_rows)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import read_json


def _lines(lines: list[int], total: int) -> str:
    shown = ", ".join(map(str, lines[:5]))
    return shown + (", ..." if total > 5 else "")


def unavailable_notes(fetched: dict[str, dict[str, Any]], except_tasks: set[str]) -> list[str]:
    """Files the fetch stage could not get (a task in `except_tasks` has its own n/a footnote)."""
    out = []
    for rel, entry in sorted(fetched.items()):
        if entry.get("path"):
            continue
        owner, _, role = entry.get("role", "").partition(":")
        if owner == "corpus":
            out.append(f"corpus source {role} not available ({rel}): the LM corpus was made without it")
        elif owner not in except_tasks:
            out.append(f"{owner}: {role} split not available ({rel})")
    return out


def corpus_notes(summary: dict[str, Any]) -> list[str]:
    """Dumps kept although truncated, sources cut at corpus.max_docs_per_source, test texts left out."""
    out = []
    for stats in summary.values():
        if not isinstance(stats, dict) or "sources" not in stats:
            continue  # per-language build statistics have "sources"; synthetic text and counts do not
        cap = stats.get("config", {}).get("max_docs_per_source", 0)
        for name, src in stats["sources"].items():
            if src.get("truncated"):
                out.append(f"corpus source {name}: the dump is truncated; the pages before the cut were used "
                           f"(corpus.keep_truncated = true)")
            if cap and src.get("documents_read", 0) >= cap:
                out.append(f"corpus source {name}: only its first {cap} documents were read "
                           f"(corpus.max_docs_per_source = {cap})")
    dropped = summary.get("task_text_dropped_test_overlap", 0)
    if dropped:
        out.append(f"LM corpus: {dropped} task texts equal to a test text were left out")
    return out


def task_notes(task_meta: dict[str, dict[str, Any]]) -> list[str]:
    """Rows skipped and splits sampled, per task, from the encode stage's task.json files."""
    out = []
    for task, meta in task_meta.items():
        for role, split in meta.get("splits", {}).items():
            if split.get("skipped"):
                n, where = split["skipped"], split.get("skipped_lines", [])  # no lines in older task.json files
                rows, lines = ("1 bad row", "line") if n == 1 else (f"{n} bad rows", "lines")
                out.append(f"{task} {role}: {rows} skipped (on_bad_row = \"skip\")"
                           + (f", {lines} {_lines(where, n)}" if where else ""))
            read = split.get("read", 0)
            if read > split.get("n", 0):
                out.append(f"{task} {role}: a sample of {split['n']} of its {read} rows (data.max_task_rows)")
    return out


def run_notes(*, fetch_dir: Path | None, corpus_dir: Path | None, encode_dir: Path | None,
              except_tasks: set[str] = frozenset()) -> list[str]:
    """Every note of a run from its finished stage folders (any of them may be None: not run yet)."""
    out: list[str] = []
    if fetch_dir is not None and (fetch_dir / "fetched.json").exists():
        out += unavailable_notes(read_json(fetch_dir / "fetched.json"), set(except_tasks))
    if corpus_dir is not None and (corpus_dir / "_stage.json").exists():
        out += corpus_notes(json.loads((corpus_dir / "_stage.json").read_text(encoding="utf-8")).get("summary", {}))
    if encode_dir is not None:
        out += task_notes({p.parent.name: read_json(p) for p in sorted((encode_dir / "tasks").glob("*/task.json"))})
    return out


def notes_of_run(run_dir: str | Path, except_tasks: set[str] = frozenset()) -> list[str]:
    """`run_notes` of a run folder (work/runs/<recipe>-<preset>), for the stages it has finished."""
    from .runfolder import RunFolder

    run = RunFolder(run_dir)
    return run_notes(fetch_dir=run.find_stage("fetch"), corpus_dir=run.find_stage("corpus"),
                     encode_dir=run.find_stage("encode"), except_tasks=except_tasks)
