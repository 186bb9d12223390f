"""Result tables: seeds aggregated to mean ± std, baselines and published references, four formats.

A result record: {"task", "system", "seed", "split", "metrics": {"accuracy", "weighted_f1", "macro_f1"},
"n", "preset", "note"}. A reference: {"task", "system", "metric", "value" (fraction), "cite"}.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from .atomic import atomic_write, write_json

METRIC_SHORT = {"accuracy": "acc", "weighted_f1": "w-F1", "macro_f1": "m-F1"}
SYSTEM_ORDER = ["ULMFiT fwd", "ULMFiT bwd", "ULMFiT ensemble", "ULMFiT fwd + valid-tuned bias",
                "ULMFiT bwd + valid-tuned bias", "ULMFiT ensemble + valid-tuned bias", "majority", "tfidf-lr", "fasttext"]


def aggregate(records: list[dict]) -> list[dict]:
    """Per (task, system): mean and sample std of each metric over seeds, and the seed count."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["system"]), []).append(r)
    out = []
    for (task, system), rs in groups.items():
        row = {"task": task, "system": system, "n_seeds": len(rs), "n": rs[0].get("n"), "note": rs[0].get("note", ""),
               "mean": {}, "std": {}}
        for metric in rs[0]["metrics"]:
            values = [r["metrics"][metric] for r in rs]
            row["mean"][metric] = statistics.fmean(values)
            row["std"][metric] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(row)
    return out


def _system_key(system: str) -> tuple[float, str]:
    """Table order: SYSTEM_ORDER, other ULMFiT rows (pooled seeds, fusions) before the baselines, then the rest."""
    if system in SYSTEM_ORDER:
        return (SYSTEM_ORDER.index(system), system)
    if system.startswith("ULMFiT "):
        return (SYSTEM_ORDER.index("majority") - 0.5, system)
    return (len(SYSTEM_ORDER), system)


def _grid(records: list[dict], references: list[dict], metric_by_task: dict[str, str],
          unavailable: dict[str, str], run_notes: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows of cells, footnotes."""
    return grid_from_aggregate(aggregate(records), references, metric_by_task, unavailable, run_notes)


def grid_from_aggregate(agg: list[dict], references: list[dict], metric_by_task: dict[str, str],
                        unavailable: dict[str, str], run_notes: list[str] = ()
                        ) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows of cells, footnotes from aggregated rows (`aggregate`'s output, or a results.json's
    "aggregate" when its per-seed records are not kept). `run_notes`: what the run skipped, dropped,
    truncated or could not get (notes.py), the last footnotes."""
    tasks = list(metric_by_task) + sorted({r["task"] for r in agg} - set(metric_by_task))
    systems = sorted({r["system"] for r in agg}, key=_system_key)
    cell = {(r["task"], r["system"]): r for r in agg}
    header = ["system"] + [f"{t} ({METRIC_SHORT.get(metric_by_task.get(t, 'accuracy'), metric_by_task.get(t))})"
                           for t in tasks]
    rows, notes = [], []
    for system in systems:
        row = [system]
        for t in tasks:
            r = cell.get((t, system))
            metric = metric_by_task.get(t, "accuracy")
            if r is None:
                row.append("n/a" if t in unavailable else "")
            else:
                row.append(f"{100 * r['mean'][metric]:.2f} ± {100 * r['std'][metric]:.2f} ({r['n_seeds']})")
        rows.append(row)
    # one row per published system, one footnote per citation
    cites: dict[tuple[str, str], int] = {}
    by_system: dict[str, list[dict]] = {}
    for ref in references:
        if ref["task"] in tasks:
            cites.setdefault((ref["cite"], ref["metric"]), len(cites) + 1)
            by_system.setdefault(ref["system"], []).append(ref)
    for system, refs in by_system.items():
        marks = sorted({cites[(r["cite"], r["metric"])] for r in refs})
        row = [f"{system} [{', '.join(map(str, marks))}]"] + [""] * len(tasks)
        for ref in refs:
            value = ref["value"] / 100 if ref["value"] > 1 else ref["value"]  # given in percent
            shown = "" if ref["metric"] == metric_by_task.get(ref["task"], "accuracy") else \
                f" ({METRIC_SHORT.get(ref['metric'], ref['metric'])})"  # not the column's metric: say which
            row[1 + tasks.index(ref["task"])] = f"{100 * value:.2f}{shown}"
        rows.append(row)
    notes += [f"[{i}] {cite} ({metric}, published)" for (cite, metric), i in cites.items()]
    for t, reason in unavailable.items():
        notes.append(f"{t}: n/a, {reason}")
    for t in tasks:
        note = next((r["note"] for r in agg if r["task"] == t and r.get("note")), "")
        if note:
            notes.append(f"{t}: {note}")
    notes += list(run_notes)
    return header, rows, notes


def markdown_body(header: dict[str, str], cols: list[str], rows: list[list[str]], notes: list[str]) -> list[str]:
    """The Markdown of a results table below its title: header bullets, the table, the cell legend and notes."""
    md = [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in header.items()]
    md += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "Cells: mean ± sample std over seeds (number of seeds), in percent."] + [f"- {n}" for n in notes]
    return md


def write_tables(records: list[dict], references: list[dict], out_dir: Path, *, title: str,
                 metric_by_task: dict[str, str], header: dict[str, str], unavailable: dict[str, str] | None = None,
                 run_notes: list[str] | None = None, stem: str = "results") -> dict[str, Path]:
    """Write <stem>.md, .csv, .json and .tex; cells are 'mean ± std (seeds)' in percent of each task's metric.

    `run_notes` (what the run skipped, dropped, truncated or could not get) end the footnotes."""
    out_dir = Path(out_dir)
    unavailable = unavailable or {}
    run_notes = list(run_notes or [])
    cols, rows, notes = _grid(records, references, metric_by_task, unavailable, run_notes)
    paths = {k: out_dir / f"{stem}.{k}" for k in ("md", "csv", "json", "tex")}

    md = [f"## {title}", ""] + markdown_body(header, cols, rows, notes)
    with atomic_write(paths["md"]) as f:
        f.write("\n".join(md) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    w.writerows(rows)
    with atomic_write(paths["csv"]) as f:
        f.write(buf.getvalue())

    write_json(paths["json"], {"title": title, "header": header, "metric_by_task": metric_by_task,
                               "aggregate": aggregate(records), "references": references, "unavailable": unavailable,
                               "run_notes": run_notes, "records": records})

    def tex(s: str) -> str:
        return s.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%").replace("_", "\\_").replace(
            "#", "\\#").replace("±", "$\\pm$")

    # the results header above the table, as in the .md
    lines = [f"% {k}: {' '.join(str(v).splitlines())}" for k, v in header.items()]
    lines += ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", "\\toprule",
             " & ".join(tex(c) for c in cols) + " \\\\", "\\midrule"]
    lines += [" & ".join(tex(c) for c in r) + " \\\\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{tex(title)}. " + tex("; ".join(notes)) + "}",
              "\\end{table}"]
    with atomic_write(paths["tex"]) as f:
        f.write("\n".join(lines) + "\n")
    return paths
