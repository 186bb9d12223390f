"""Check a recipe's task files before any slow stage: `ulmfit-multi check RECIPE`, and the fetch stage.

Every task file is read once, as the stages will read it (`corpus.tasks.load_task`): columns present, every
label in the mapping, the text decodable in the task's `encoding`, no empty text. The first file that cannot
be used raises a DataError naming the file and the line, unless the task says `on_bad_row = "skip"` (then its
bad rows are counted and their lines listed). Duplicate texts within a split and texts that two splits
share (a test text also in train) are reported, not fatal: the public datasets have some.

Usage:
    report = check_recipe(load_recipe("mr", "smoke"), Paths.resolve(mirror="../shared/data"))
    print("\n".join(format_check(report)))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config
from .corpus.tasks import Split, load_task
from .errors import DataError
from .inputs import HashCache, find_local, hash_cache, input_files
from .paths import Paths

SHARED_PAIRS = (("test", "train"), ("test", "valid"), ("test", "unlabeled"), ("valid", "train"))
MAX_LINES = 20  # line numbers kept per finding


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duplicates(split: Split) -> dict[str, Any]:
    first: dict[str, int] = {}
    count, example = 0, []
    for text, line in zip(split.texts, split.lines):
        if text in first:
            count += 1
            if not example:
                example = [first[text], line]
        else:
            first[text] = line
    return {"duplicates": count, "duplicate_example": example}


def _shared(a: Split, b: Split) -> dict[str, Any]:
    lines_b: dict[str, int] = {}
    for text, line in zip(b.texts, b.lines):
        lines_b.setdefault(text, line)
    example = next(([line, lines_b[t]] for t, line in zip(a.texts, a.lines) if t in lines_b), [])
    return {"texts": len(set(a.texts) & lines_b.keys()), "example": example}


def check_tasks(cfg: Config, fetched: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Read every task file of `cfg` once (`fetched`: relative path -> {"path": local path or None}, as the
    fetch stage writes it); returns the report, raises DataError (file and line) on a file that cannot be used."""
    def resolve(rel: str) -> Path | None:
        entry = fetched.get(rel)
        return Path(entry["path"]) if entry and entry.get("path") else None

    report: dict[str, Any] = {}
    for spec in cfg.tasks:
        data = load_task(spec, resolve)
        splits = {role: {"path": str(s.path), "rows": len(s.texts), "skipped": s.skipped,
                         "skipped_lines": s.skipped_lines[:MAX_LINES], **_duplicates(s)}
                  for role, s in data.splits.items()}
        shared = {f"{a}/{b}": _shared(data.splits[a], data.splits[b]) for a, b in SHARED_PAIRS
                  if a in data.splits and b in data.splits}
        report[spec.name] = {"splits": splits, "shared": {k: v for k, v in shared.items() if v["texts"]},
                             "unavailable": data.unavailable}
    return report


def check_recipe(cfg: Config, paths: Paths, cache: HashCache | None = None) -> dict[str, Any]:
    """Locate the recipe's files without downloading anything, verify mirror copies against their declared
    sha256, and check every task file found (`check_tasks`). Returns {"files": {rel: {...}}, "tasks": report}."""
    cache = cache if cache is not None else hash_cache(paths)
    files: dict[str, dict[str, Any]] = {}
    for f in input_files(cfg):
        local = find_local(f.rel, paths)
        entry: dict[str, Any] = {"path": str(local) if local else None, "role": f.role, "group": f.group}
        if local is None:
            entry["reason"] = f"would be downloaded from {f.url}" if f.url else "not found, and no URL is known"
        elif f.group == "tasks" and f.sha256 and local.is_file() and cache.sha256(local) != f.sha256:
            raise DataError(f"{local}: sha256 differs from the recipe's data.sha256 entry for {f.rel!r} "
                            f"({f.sha256}); replace the file, or fix the recipe's checksum")
        files[f.rel] = entry
    cache.save()
    return {"files": files, "tasks": check_tasks(cfg, files)}


def check_findings(tasks_report: dict[str, Any]) -> list[str]:
    """One line per finding that is not fatal: skipped rows, duplicate texts, texts two splits share."""
    out = []
    for task, rep in tasks_report.items():
        for role, s in rep["splits"].items():
            name = Path(s["path"]).name
            if s["skipped"]:
                shown = ", ".join(map(str, s["skipped_lines"][:5])) + (", ..." if s["skipped"] > 5 else "")
                out.append(f"{task} {role}: {_n(s['skipped'], 'bad row')} skipped in {name} (lines {shown})")
            if s["duplicates"]:
                a, b = s["duplicate_example"]
                out.append(f"{task} {role}: {_n(s['duplicates'], 'duplicate text')} in {name} "
                           f"(e.g. line {b} repeats line {a})")
        for pair, sh in rep["shared"].items():
            a, b = pair.split("/")
            la, lb = sh["example"]
            out.append(f"{task}: {_n(sh['texts'], a + ' text')} also in {b} (e.g. {a} line {la} = {b} line {lb})")
    return out


def format_check(report: dict[str, Any]) -> list[str]:
    """The report of `check_recipe` as lines for the terminal."""
    lines = []
    for rel, f in report["files"].items():
        where = f["path"] or f"missing: {f['reason']}"
        lines.append(f"  {f['role']:<28} {where}")
    for task, rep in report["tasks"].items():
        counts = ", ".join(f"{role} {s['rows']}" for role, s in rep["splits"].items())
        lines.append(f"{task}: rows {counts}" + (f"; unavailable: {', '.join(rep['unavailable'])}"
                                                   if rep["unavailable"] else ""))
    lines += [f"note: {n}" for n in check_findings(report["tasks"])]
    return lines
