"""docs/BENCHMARKS.md as a page generated from committed result files (`ulmfit-multi results-page`).

A results folder (docs/results/) holds `index.toml` and the result files it names:

    command = "ulmfit-multi results-page docs/results --out docs/BENCHMARKS.md"   # stated atop the page
    title = "Benchmarks"
    intro = "..."                            # Markdown under the title
    [[section]]
    title = "..."
    why = "..."                              # what the section shows and how to read it (Markdown)
    command = "..."                          # the exact commands that produced its results
    images = [{ path = "img/x.png", alt = "..." }]
    [[section.table]]
    file = "mr-cpu.json"                     # a result file (below)
    tasks = ["mahasent-gt", "..."]           # optional column order of a results table
    [section.glance]                         # optional: one number per cell, picked from result files
    columns = [{ label = "...", file = "ta-cpu.json", task = "fire2020-ta" }]
    rows = [{ label = "...", system = "ULMFiT ensemble", alt_file = "..." }, { label = "...", references = ["..."] }]
    footnote = "..."                         # under the table; a cell taken from a row's alt_file is marked *

A result file is either the `results.json` that `tables.write_tables` writes (title, header, metric_by_task,
aggregate, references, unavailable, records), rendered through the same code as its `results.md`, from the
per-seed records when kept and from the aggregated rows otherwise; or a simple table
{"title", "header", "columns", "rows", "notes"} for figures that are not classification scores.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Callable

from .atomic import atomic_write
from .errors import DataError
from .tables import aggregate, grid_from_aggregate, markdown_body

DEFAULT_COMMAND = "ulmfit-multi results-page docs/results --out docs/BENCHMARKS.md"
SECTION_KEYS = {"title", "why", "command", "images", "table", "glance"}
INDEX_KEYS = {"command", "title", "intro", "section"}
# header bullets in this order (a results.json stores its header key-sorted); other keys follow as stored
HEADER_ORDER = ["recipe", "preset", "command", "runs", "code version", "code version (of the runs)", "gathered by",
                "hardware", "hardware (of the runs)", "torch", "seeds", "source"]


def read_index(results_dir: Path) -> dict[str, Any]:
    """`index.toml` of a results folder, with its keys checked."""
    path = Path(results_dir) / "index.toml"
    if not path.is_file():
        raise DataError(f"{path}: no index.toml in the results folder {results_dir}")
    try:
        index = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"{path}: {e}") from None
    _check_keys(index, INDEX_KEYS, str(path))
    for i, section in enumerate(index.get("section", [])):
        where = f"{path}, section {i + 1} ({section.get('title', 'no title')})"
        _check_keys(section, SECTION_KEYS, where)
        if "title" not in section:
            raise DataError(f"{where}: a section needs a title")
        for image in section.get("images", []):
            if not isinstance(image, dict) or "path" not in image:
                raise DataError(f"{where}: an image is {{ path = \"img/x.png\", alt = \"...\" }}, not {image!r}")
    return index


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    """Name the keys of `d` that are not in `allowed`."""
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}")


def read_result(results_dir: Path, name: str) -> dict[str, Any]:
    """One result file of the folder; a missing or unreadable one is named."""
    path = Path(results_dir) / name
    if not path.is_file():
        raise DataError(f"{path}: result file named in {Path(results_dir) / 'index.toml'} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not ({"aggregate", "records"} & set(doc) or "columns" in doc):
        raise DataError(f"{path}: neither a results.json (aggregate, records) nor a simple table (columns, rows)")
    return doc


def ordered_header(header: dict[str, Any]) -> dict[str, Any]:
    """The header keys in HEADER_ORDER, then the others as stored."""
    first = [k for k in HEADER_ORDER if k in header]
    return {k: header[k] for k in first + [k for k in header if k not in first]}


def results_grid(doc: dict[str, Any], tasks: list[str] | None = None) -> tuple[list[str], list[list[str]], list[str]]:
    """Columns, rows and notes of a results.json, exactly as `write_tables` lays them out.

    `tasks` orders the columns (the stored metric_by_task is key-sorted); the per-seed records are aggregated
    when present, else the stored aggregated rows are used."""
    metric_by_task = doc.get("metric_by_task", {})
    if tasks:
        missing = [t for t in tasks if t not in metric_by_task]
        if missing:
            raise DataError(f"{doc.get('title', '?')}: tasks {missing} not in its metric_by_task")
        metric_by_task = {t: metric_by_task[t] for t in tasks} | metric_by_task
    agg = aggregate(doc["records"]) if doc.get("records") else doc.get("aggregate", [])
    return grid_from_aggregate(agg, doc.get("references", []), metric_by_task, doc.get("unavailable", {}),
                               doc.get("run_notes", []))


def _bullets(header: dict[str, Any]) -> list[str]:
    """Header bullets as write_tables writes them; a list value gives one bullet per item."""
    out = []
    for k, v in ordered_header(header).items():
        for item in v if isinstance(v, list) else [v]:
            out.append(f"- {k}: `{item}`" if k == "command" else f"- {k}: {item}")
    return out


def render_table(doc: dict[str, Any], tasks: list[str] | None = None) -> list[str]:
    """Markdown lines of one result file, under a level-3 heading with its title."""
    lines = [f"### {doc.get('title', 'Results')}", ""]
    if "columns" in doc:  # a simple table
        cols = doc["columns"]
        lines += _bullets(doc.get("header", {}))
        lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in doc["rows"]]
        if doc.get("notes"):
            lines += [""] + [f"- {n}" for n in doc["notes"]]
        return lines
    cols, rows, notes = results_grid(doc, tasks)
    return lines + markdown_body(ordered_header(doc.get("header", {})), cols, rows, notes)


def render_glance(glance: dict[str, Any], load: Callable[[str], dict[str, Any]]) -> list[str]:
    """A summary table: per row a system (its mean over seeds) or a published reference, per column a task of
    one result file; a row's `alt_file` fills cells its column's file lacks, marked with *."""
    cols = glance["columns"]
    lines = ["| system | " + " | ".join(c["label"] for c in cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for row in glance["rows"]:
        cells = []
        for col in cols:
            cell = ""
            for name, mark in [(col["file"], "")] + ([(row["alt_file"], " *")] if "alt_file" in row else []):
                cell = _glance_cell(load(name), col["task"], row)
                if cell:
                    cell += mark
                    break
            cells.append(cell)
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if glance.get("footnote"):
        lines += ["", glance["footnote"].strip()]
    return lines


def _glance_cell(doc: dict[str, Any], task: str, row: dict[str, Any]) -> str:
    """Mean of `row['system']` on `task` in percent, or the first of `row['references']` given for `task`."""
    metric = doc.get("metric_by_task", {}).get(task, "accuracy")
    if "system" in row:
        agg = aggregate(doc["records"]) if doc.get("records") else doc.get("aggregate", [])
        hit = next((r for r in agg if r["task"] == task and r["system"] == row["system"]), None)
        return f"{100 * hit['mean'][metric]:.2f}" if hit else ""
    for ref in doc.get("references", []):
        if ref["task"] == task and ref["system"] in row.get("references", []):
            value = ref["value"] / 100 if ref["value"] > 1 else ref["value"]
            return f"{100 * value:.2f}"
    return ""


def render_page(results_dir: Path) -> str:
    """The whole page: generated-by line, title, intro, then each section (why, command, tables, images)."""
    results_dir = Path(results_dir)
    index = read_index(results_dir)
    cache: dict[str, dict] = {}

    def load(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = read_result(results_dir, name)
        return cache[name]

    command = index.get("command", DEFAULT_COMMAND)
    lines = [f"*Generated by `{command}` from the results folder it names (`index.toml` and the result files "
             "listed there): edit those and rerun the command; do not edit this page by hand.*", "", f"# {index.get('title', 'Benchmarks')}"]
    if index.get("intro"):
        lines += ["", index["intro"].strip()]
    for section in index.get("section", []):
        lines += ["", f"## {section['title']}"]
        if section.get("why"):
            lines += ["", section["why"].strip()]
        if section.get("command"):
            lines += ["", "```bash", section["command"].strip(), "```"]
        if "glance" in section:
            lines += [""] + render_glance(section["glance"], load)
        for table in section.get("table", []):
            if "file" not in table:
                raise DataError(f"{results_dir / 'index.toml'}, section {section['title']}: a table needs a file")
            lines += [""] + render_table(load(table["file"]), table.get("tasks"))
        for image in section.get("images", []):
            lines += ["", f"![{image.get('alt', '')}]({image['path']})"]
    return "\n".join(lines) + "\n"


def write_page(results_dir: Path, out: Path) -> Path:
    """Render the page and write it atomically to `out`."""
    text = render_page(results_dir)
    with atomic_write(out) as f:
        f.write(text)
    return Path(out)
