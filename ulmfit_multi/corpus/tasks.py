"""Task data: CSV/TSV readers with the real files' quirks, column and label mapping, splits.

Quirks handled (see ../shared/data/README.md): unnamed index columns (MahaSent MR/ST), quoted
newlines (L3CubeMahaSent), labels with trailing spaces and spaces vs underscores ("Positive ",
"Mixed feelings" == "Mixed_feelings"), leading spaces in texts, QUOTE_NONE TSVs (FIRE), zero-width
characters. Files are read in the task's `encoding` (default UTF-8). A row that cannot be parsed or
decoded, an empty text or a label outside the mapping raises a DataError naming the file and its
physical line, unless the task says `on_bad_row = "skip"`: then the rows are counted and their lines
recorded.

`load_tasks(cfg, fetched)` loads a recipe's tasks; `prepare_text` is the normalization every task text
gets before the tokenizer, in training and in prediction alike.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..config import Config, Task
from ..errors import DataError, RecipeError
from .normalize import normalize_text, social_normalize

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
_LABEL_SEP_RE = re.compile(r"(?<=\w)[\s_\-]+(?=\w)")  # only between word characters: "-1" stays "-1"


@dataclass
class Split:
    """One split's texts and class ids (-1 when unlabeled)."""

    texts: list[str]
    labels: np.ndarray
    path: Path
    skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the physical line each text starts on
    rows_read: int = 0  # usable rows in the file, before any `data.max_task_rows` sampling


@dataclass
class TaskData:
    """A loaded task: class names, splits, the splits that are unavailable (with reasons), and how its texts
    are normalized before the tokenizer (`prepare`)."""

    spec: Task
    classes: list[str]
    splits: dict[str, Split]
    unavailable: dict[str, str]
    normalization: str = "shared"

    def prepare(self, text: str) -> str:
        """`prepare_text` of one of this task's texts."""
        return prepare_text(text, self.spec.lang, self.normalization)

    def prepared(self, role: str) -> list[str]:
        """Every text of a split, prepared."""
        return [self.prepare(t) for t in self.splits[role].texts]


def normalize_label(raw: str) -> str:
    """Casefolded label with spaces, underscores and hyphens collapsed: 'Mixed feelings ' -> 'mixed_feelings'."""
    return _LABEL_SEP_RE.sub("_", raw.strip()).casefold()


def class_names(spec: Task) -> list[str]:
    """Class names in mapping order, without duplicates."""
    return list(dict.fromkeys(spec.labels.values()))


def _decode(data: bytes, path: Path, spec: Task) -> str:
    """The whole file as text (task files are a few MB, and an error's offset is exact). In skip mode an
    undecodable byte becomes a lone surrogate (surrogateescape), and the row holding it is skipped."""
    codec = codecs.lookup(spec.encoding).name  # load_task has checked the name
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        if spec.on_bad_row == "skip":
            return data.decode(codec, errors="surrogateescape")
        line = data.count(b"\n", 0, e.start) + 1
        name = "UTF-8" if codec == "utf-8" else spec.encoding
        raise DataError(f"{path}: line {line}: invalid {name} at byte {e.start} (a task's `encoding` sets how its "
                        f"files are read; on_bad_row = \"skip\" skips such rows)") from None


_UNDECODABLE_RE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of an undecodable byte


def _rows(path: Path, spec: Task) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (physical line number, row) pairs of a CSV/TSV file."""
    delimiter = "\t" if spec.format == "tsv" else ","
    quoting = csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL
    text = _decode(path.read_bytes(), path, spec)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: line 1: empty file (expected a header line)") from None
        rows = []
        line = reader.line_num + 1
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: {e}") from None
    return [h.strip() for h in header], rows


def _column(header: list[str], name: str, path: Path) -> int:
    if name in header:
        return header.index(name)
    raise DataError(f"{path}: line 1: no column '{name}' (columns: {header})")


# zero-width characters (and the whitespace around them) at either end; inside a word a ZWJ/ZWNJ is kept
_ZW_RE = re.compile("[\\s\u200b\u200c\u200d\ufeff]+$|^[\\s\u200b\u200c\u200d\ufeff]+")


def load_split(path: Path, spec: Task, role: str) -> Split:
    """Read one split file; unlabeled splits may lack the label column."""
    header, rows = _rows(path, spec)
    text_col = _column(header, spec.text, path)
    labeled = role != "unlabeled" and spec.label in header
    if role != "unlabeled" and not labeled:
        raise DataError(f"{path}: line 1: no label column '{spec.label}' (columns: {header})")
    label_col = header.index(spec.label) if labeled else -1
    classes = class_names(spec)
    mapping: dict[str, int] = {}
    for raw, name in spec.labels.items():
        key = normalize_label(raw)
        if mapping.get(key, classes.index(name)) != classes.index(name):
            raise DataError(f"task '{spec.name}': labels {raw!r} and another key both normalize to {key!r}")
        mapping[key] = classes.index(name)
    texts, labels, lines, skipped_lines = [], [], [], []
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line; a row of empty fields (",,") is a bad row
        problem = ""
        if any(_UNDECODABLE_RE.search(cell) for cell in row):
            problem = f"bytes that are not {spec.encoding}"
        elif len(row) != len(header):
            problem = f"expected {len(header)} fields, got {len(row)}"
        else:
            text = _ZW_RE.sub("", row[text_col].strip()).replace("\r\n", "\n")  # quoted CRLF newlines
            if not text:
                problem = "empty text"
            elif labeled:
                key = normalize_label(row[label_col])
                if key not in mapping:
                    problem = f"label {row[label_col]!r} is not in the mapping {sorted(spec.labels)}"
        if problem:
            if spec.on_bad_row == "skip":
                skipped_lines.append(line)
                continue
            raise DataError(f"{path}: line {line}: {problem}")
        texts.append(text)
        labels.append(mapping[normalize_label(row[label_col])] if labeled else -1)
        lines.append(line)
    if not texts:
        raise DataError(f"{path}: no usable rows")
    return Split(texts, np.asarray(labels, dtype=np.int64), path, len(skipped_lines), skipped_lines, lines,
                 rows_read=len(texts))


def load_task(spec: Task, resolve: Callable[[str], Path | None]) -> TaskData:
    """Load every split; a split whose file resolve() cannot find is listed as unavailable."""
    choices = {"format": ("csv", "tsv"), "quoting": ("minimal", "none"), "on_bad_row": ("error", "skip")}
    for key, allowed in choices.items():
        if getattr(spec, key) not in allowed:
            raise RecipeError(f"task '{spec.name}': {key} = {getattr(spec, key)!r}, expected one of {allowed}")
    try:
        codecs.lookup(spec.encoding)
    except LookupError:
        raise RecipeError(f"task '{spec.name}': encoding = {spec.encoding!r} is not a text encoding; expected "
                          f"one such as \"utf-8\", \"utf-16\" or \"cp1252\"") from None
    if not spec.labels:
        raise DataError(f"task '{spec.name}': no label mapping")
    splits, unavailable = {}, {}
    for role, rel in spec.splits.items():
        path = resolve(rel)
        if path is None:
            unavailable[role] = f"file not available: {rel}"
            continue
        splits[role] = load_split(Path(path), spec, role)
    return TaskData(spec, class_names(spec), splits, unavailable)


# ------------------------------------------------------------------ a recipe's tasks


def prepare_text(text: str, lang: str, normalization: str = "shared", *, normalizer: str | None = None) -> str:
    """The normalization every task text gets before the tokenizer, in training and in prediction alike.

    "shared": `corpus.normalize.normalize_text` with the language's indic-nlp normalizer, the same steps the
    corpus text goes through; "legacy": Unicode NFC and the social-media rules only (what task text got before
    the two were made one; kept for ablations). `normalizer`: that normalizer's language given directly (a
    bundle records its own, "" for none) instead of read from the language spec.
    """
    if normalization == "legacy":
        return social_normalize(unicodedata.normalize("NFC", text))
    return normalize_text(text, _normalizer_lang(lang) if normalizer is None else (normalizer or None))


@functools.lru_cache(maxsize=None)
def _normalizer_lang(lang: str) -> str | None:
    from ..langs import load_lang

    return load_lang(lang).normalizer or None


def load_tasks(cfg: Config, fetched: dict[str, dict]) -> dict[str, TaskData]:
    """Each task's splits, read from the files the fetch stage found (`fetched.json`: relative path ->
    {"path": local path or None}); sub-sampled with a fixed seed when `data.max_task_rows` > 0."""
    def resolve(rel: str) -> Path | None:
        entry = fetched.get(rel)
        return Path(entry["path"]) if entry and entry.get("path") else None

    out = {}
    for task in cfg.tasks:
        data = load_task(task, resolve)
        data.normalization = cfg.corpus.normalization
        if cfg.data.max_task_rows:
            for split in data.splits.values():
                subsample(split, cfg.data.max_task_rows)
        out[task.name] = data
    return out


def subsample(split: Split, n: int) -> None:
    """Keep a seeded sample of `n` rows, in file order (task files are often sorted by label: not the first n)."""
    if len(split.texts) <= n:
        return
    keep = np.sort(np.random.default_rng(0).choice(len(split.texts), size=n, replace=False))
    split.texts = [split.texts[i] for i in keep]
    split.labels = np.asarray(split.labels)[keep]
    if split.lines:
        split.lines = [split.lines[i] for i in keep]


def test_sets(tasks: dict[str, TaskData]) -> dict[str, set[str]]:
    """Each task's test texts, prepared (`TaskData.prepare`)."""
    return {name: set(data.prepared("test")) for name, data in tasks.items() if "test" in data.splits}


def all_test_texts(tasks: dict[str, TaskData]) -> set[str]:
    """Every test text of every task, prepared (`TaskData.prepare`)."""
    return set().union(*test_sets(tasks).values())


def write_task_text(tasks: dict[str, TaskData], roles: tuple[str, ...], path: Path) -> tuple[int, int]:
    """Task texts in corpus format (one document per comment/review); returns (written, dropped).

    Never a test text: not the test splits, and not any text equal to a test text of any task. Datasets
    share comments across releases (most of FIRE 2020's Tamil test comments are in the FIRE 2021 train
    split), so without this check the LM corpus of a multi-task recipe would hold one task's test set.
    """
    test = all_test_texts(tasks)
    n = dropped = 0
    with atomic_write(path) as f:
        for data in tasks.values():
            for role in roles:
                if role in data.splits:
                    for text in data.prepared(role):
                        if text in test:
                            dropped += 1
                        elif text:
                            f.write(text.replace("\n", " ") + "\n\n")
                            n += 1
    return n, dropped
