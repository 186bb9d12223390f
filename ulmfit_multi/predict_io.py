"""Batch prediction: texts from a file or stdin, predictions to a file or stdout, streamed.

    ulmfit-multi predict BUNDLE --input reviews.csv --column text --output predictions.csv
    cat texts.txt | ulmfit-multi predict BUNDLE --input - --output predictions.jsonl

Input (`read_texts`): `.txt` one text per line; `.csv` / `.tsv` with a header row, the text in `column`;
`.jsonl` one JSON object per line, the text in `field`; "-" is stdin (`fmt` says which, default txt). A text's
id is its line (txt, jsonl) or row (csv, tsv) number counted from 1, or the value of `id_key` when given.

Output (`PredictionWriter`): CSV or TSV with the columns id, label, probability (of that label), prob_<class> for
every class, flag; or JSONL, one {"id", "label", "probability", "probs": {class: p}, "flag"} per text. The
format follows the output file's suffix (stdout: CSV unless `fmt` is "jsonl"). `flag` says why a prediction
means little (an empty text, no letters, an unknown script: `Predictor.flags`); such texts are still labelled.

`predict_stream` reads `chunk` texts at a time, predicts each chunk in batches of similar length (the longest
first), writes the predictions in input order, and returns the counts and documents/s.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .errors import DataError

FORMATS = ("txt", "csv", "tsv", "jsonl")


@dataclass
class Item:
    """One text to classify: its id, the text, and its gold label when the input has one (benchmarks)."""

    id: str
    text: str
    label: str | None = None


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """txt, csv, tsv or jsonl: `fmt` when given, else from the file's suffix (stdin "-": txt)."""
    if fmt:
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    if str(path) == "-":
        return "txt"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("json", "ndjson"):
        suffix = "jsonl"
    if suffix not in FORMATS:
        raise DataError(f"{path}: cannot tell the format from the suffix; use .txt, .csv, .tsv or .jsonl, or --format")
    return suffix


def read_texts(path: str | Path, *, column: str | None = None, field: str | None = None, id_key: str | None = None,
               label_key: str | None = None, fmt: str | None = None, stdin: IO[str] | None = None) -> Iterator[Item]:
    """The texts of a file (or stdin for "-"), one `Item` at a time."""
    kind = detect_format(path, fmt)
    if str(path) != "-" and not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    stream = (stdin or sys.stdin) if str(path) == "-" else open(path, encoding="utf-8-sig", newline="")
    try:
        if kind == "txt":
            for n, line in enumerate(stream, 1):
                yield Item(str(n), line.rstrip("\r\n"))
        elif kind == "jsonl":
            yield from _jsonl_items(stream, path, field or "text", id_key, label_key)
        else:
            yield from _table_items(stream, path, "\t" if kind == "tsv" else ",", column, id_key, label_key)
    finally:
        if stream is not stdin and stream is not sys.stdin:
            stream.close()


def _jsonl_items(stream: IO[str], path: str | Path, field: str, id_key: str | None,
                 label_key: str | None) -> Iterator[Item]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}: line {n}: not JSON ({e})") from None
        if not isinstance(obj, dict) or field not in obj:
            raise DataError(f"{path}: line {n}: no field {field!r} (choose it with --field)")
        yield Item(str(obj[id_key]) if id_key else str(n), str(obj[field] or ""),
                   None if label_key is None else str(obj.get(label_key, "")))


def _table_items(stream: IO[str], path: str | Path, delimiter: str, column: str | None, id_key: str | None,
                 label_key: str | None) -> Iterator[Item]:
    reader = csv.reader(stream, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    column = column or ("text" if "text" in header else None)
    if column is None:
        raise DataError(f"{path}: which column holds the text? Give --column (columns: {', '.join(header)})")
    index = {}
    for key in (column, id_key, label_key):
        if key is not None:
            if key not in header:
                raise DataError(f"{path}: no column {key!r} (columns: {', '.join(header)})")
            index[key] = header.index(key)
    for n, row in enumerate(reader, 1):
        if not row:
            continue
        cell = lambda key: row[index[key]] if index[key] < len(row) else ""  # noqa: E731
        yield Item(cell(id_key) if id_key else str(n), cell(column), None if label_key is None else cell(label_key))


class PredictionWriter:
    """Writes predictions as CSV, TSV or JSONL (to a file, atomically on close, or to stdout)."""

    def __init__(self, out: str | Path | None, classes: list[str], fmt: str | None = None):
        self.classes = list(classes)
        self.out = None if out in (None, "-") else Path(out)
        self.kind = fmt or (detect_format(self.out) if self.out is not None else "csv")
        if self.kind == "txt":
            raise DataError(f"{out}: predictions are written as .csv, .tsv or .jsonl")
        self._tmp = None if self.out is None else self.out.with_name(f".{self.out.name}.tmp")
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stream: IO[str] = sys.stdout if self.out is None else open(self._tmp, "w", encoding="utf-8", newline="")
        self._csv = None
        if self.kind in ("csv", "tsv"):
            self._csv = csv.writer(self.stream, delimiter="\t" if self.kind == "tsv" else ",", lineterminator="\n")
            self._csv.writerow(["id", "label", "probability", *[f"prob_{c}" for c in self.classes], "flag"])

    def write(self, ids: list[str], probas: Any, flags: list[str]) -> None:
        """One row per text: argmax label, its probability, every class's probability, the flag."""
        for text_id, p, flag in zip(ids, probas, flags):
            best = int(p.argmax())
            if self._csv is not None:
                self._csv.writerow([text_id, self.classes[best], f"{p[best]:.6f}", *[f"{x:.6f}" for x in p], flag])
            else:
                self.stream.write(json.dumps({"id": text_id, "label": self.classes[best], "probability": round(
                    float(p[best]), 6), "probs": {c: round(float(x), 6) for c, x in zip(self.classes, p)},
                    "flag": flag}, ensure_ascii=False) + "\n")

    def close(self, ok: bool = True) -> None:
        """Finish the file (renamed into place only when `ok`)."""
        if self.out is None:
            self.stream.flush()
            return
        self.stream.close()
        if ok:
            Path(self._tmp).replace(self.out)
        else:
            Path(self._tmp).unlink(missing_ok=True)


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_stream(predictor: Any, items: Iterable[Item], writer: PredictionWriter, *, chunk: int = 4096,
                   batch_size: int = 64, progress: bool = True, total: int | None = None) -> dict[str, Any]:
    """Predict every item and write it; returns {"documents", "seconds", "documents_per_second", "flagged"}."""
    from tqdm import tqdm

    n, flagged = 0, Counter()
    started = time.perf_counter()
    ok = False
    try:
        with tqdm(total=total, unit="doc", desc="predict", disable=not progress, file=sys.stderr) as bar:
            for part in _chunks(items, chunk):
                texts = [it.text for it in part]
                flags = predictor.flags(texts)
                writer.write([it.id for it in part], predictor.predict_proba(texts, batch_size=batch_size), flags)
                flagged.update(f.split(" (")[0] for f in flags if f)
                n += len(part)
                bar.update(len(part))
        ok = True
    finally:
        writer.close(ok)
    seconds = time.perf_counter() - started
    return {"documents": n, "seconds": round(seconds, 3), "documents_per_second": n / seconds if seconds else 0.0,
            "flagged": dict(flagged)}


def count_lines(path: str | Path) -> int | None:
    """Texts in a .txt or .jsonl file (its non-empty lines; the progress bar's total); None for other inputs."""
    if str(path) == "-" or Path(path).suffix.lower() not in (".txt", ".jsonl"):
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip()) if Path(path).suffix.lower() == ".jsonl" else sum(
            1 for _ in f)


def texts_from_args(texts: list[str]) -> Iterator[Item]:
    """Texts given on the command line, ids 1, 2, ..."""
    return (Item(str(i), t) for i, t in enumerate(texts, 1))

