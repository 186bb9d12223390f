"""Build a clean text corpus from Wikipedia dumps, WikiExtractor output and plain text.

Usage (each source is a recipe's `config.Source` with the local path it was fetched to):
    stats = build_corpus([(Source(name="mrwiki", format="mediawiki-xml"), Path("mrwiki.xml.bz2"))],
                         Path("out"), lang="mr", normalizer_lang="mr")

Output: out/corpus-00000.txt, ... (one sentence per line, one empty line between documents; a
document never spans two shards) and out/stats.json. Wikitext stripping and cleaning run on
`workers` processes in document order; dedupe runs in this process, so the output is the
same for any worker count.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import time
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import IO, Iterator

from tqdm import tqdm

from ..atomic import atomic_write, write_json
from ..config import Source
from ..errors import DataError
from .clean import CleanConfig, Deduper, TextCleaner
from .sources import Document, iter_text_documents, iter_wikiextractor_documents
from .wiki import DumpInfo, iter_articles, markup_residue, wikitext_to_text

log = logging.getLogger(__name__)
FORMATS = ("mediawiki-xml", "text", "wikiextractor")
_SHARD_RE = re.compile(r"^corpus-\d{5}\.txt$")


def _source_name(source: Source, path: Path) -> str:
    return source.name or Path(path).name


def _iter_raw(source: Source, path: Path, keep_truncated: bool, stats: dict, workers: int = 1
              ) -> Iterator[tuple[Document, frozenset[str] | None]]:
    """Documents with, for wiki pages, the namespace names to drop (their text is still wikitext)."""
    name, path = _source_name(source, path), Path(path)
    if source.format == "mediawiki-xml":
        info = DumpInfo()
        for page in iter_articles(path, keep_truncated=keep_truncated, stats=stats, info=info, workers=workers):
            yield Document(page.id, page.title, page.text, name), info.drop_ns
    elif source.format == "text":
        for doc in iter_text_documents(path, name):
            yield doc, None
    elif source.format == "wikiextractor":
        for doc in iter_wikiextractor_documents(path, name):
            yield doc, None
    else:
        raise DataError(f"{path}: unknown source format {source.format!r}; expected one of {', '.join(FORMATS)}")


def iter_documents(source: Source, path: Path, keep_truncated: bool = False, stats: dict | None = None
                   ) -> Iterator[Document]:
    """Documents of one source, read from its local `path`, as plain text (wikitext already stripped);
    skip counts go into `stats`."""
    stats = stats if stats is not None else {}
    for doc, drop_ns in _iter_raw(source, path, keep_truncated, stats):
        if drop_ns is not None:
            doc = Document(doc.id, doc.title, wikitext_to_text(doc.text, drop_ns), doc.source)
        yield doc


# ---------------------------------------------------------------- per-document work (runs in workers)

_cleaner: TextCleaner | None = None


def _init_worker(config: CleanConfig) -> None:
    global _cleaner
    _cleaner = TextCleaner(config)


def _process(task: tuple[str, frozenset[str] | None]) -> tuple[list[str], Counter]:
    text, drop_ns = task
    if drop_ns is not None:
        text = wikitext_to_text(text, drop_ns)
    dropped: Counter = Counter()
    return _cleaner.clean(text, dropped), dropped  # type: ignore[union-attr]


class _ShardWriter(AbstractContextManager):
    """Writes documents into corpus-NNNNN.txt shards of about `shard_lines` lines, atomically."""

    def __init__(self, out_dir: Path, shard_lines: int) -> None:
        self.out_dir, self.shard_lines = out_dir, max(1, shard_lines)
        self.paths: list[Path] = []
        self._cm: AbstractContextManager | None = None
        self._f: IO[str] | None = None
        self._lines = 0

    def write(self, sentences: list[str]) -> None:
        """Append one document."""
        if self._f is None or self._lines >= self.shard_lines:
            self._close(None)
            path = self.out_dir / f"corpus-{len(self.paths):05d}.txt"
            self._cm = atomic_write(path)
            self._f = self._cm.__enter__()
            self.paths.append(path)
            self._lines = 0
        elif self._lines:
            self._f.write("\n")
        self._f.write("\n".join(sentences))
        self._f.write("\n")
        self._lines += len(sentences) + 1

    def _close(self, exc: BaseException | None) -> None:
        if self._cm is not None:
            cm, self._cm, self._f = self._cm, None, None
            cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(exc)


def build_corpus(sources: list[tuple[Source, Path]], out_dir: Path, *, lang: str, normalizer_lang: str | None,
                 lid: bool = True, lid_threshold: float = 0.5, min_chars: int = 20, dedupe: bool = True,
                 lid_accept: tuple[str, ...] = (),
                 max_docs_per_source: int = 0, keep_truncated: bool = False, shard_lines: int = 200_000,
                 social: bool = False, workers: int = 0, progress: bool = True) -> dict:
    """Build clean text shards in out_dir from (source, local path) pairs, in order; returns the statistics
    dict (also written to out_dir/stats.json). A source's `name` (else its file name) keys its statistics;
    its `url`, `lang` and `optional` were the fetch stage's business and are not read here."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.iterdir():
        if _SHARD_RE.match(stale.name):
            stale.unlink()
    workers = workers or os.cpu_count() or 1
    config = CleanConfig(lang, normalizer_lang, lid, lid_threshold, min_chars, tuple(lid_accept), social)
    dropped: Counter = Counter()
    per_source: dict[str, dict] = {}
    deduper = Deduper()
    totals = Counter()
    residue_lines = residue_bad = 0
    pool = multiprocessing.Pool(workers, _init_worker, (config,)) if workers > 1 else None
    if pool is None:
        _init_worker(config)
    bar = tqdm(desc=f"corpus {lang}", unit="doc", disable=not progress)
    try:
        with _ShardWriter(out_dir, shard_lines) as writer:
            for source, path in sources:
                name = _source_name(source, path)
                src_stats: dict = {"path": str(path), "format": source.format, "documents_read": 0,
                                   "documents": 0, "sentences": 0, "characters": 0}
                per_source[name] = src_stats
                raw = _iter_raw(source, path, keep_truncated, src_stats, workers)
                cap = min((n for n in (max_docs_per_source, source.max_docs) if n), default=0)
                if source.max_docs:  # a full dump capped by corpus.max_dump_docs (resolve.py)
                    src_stats["max_docs"] = cap
                if cap:
                    raw = _limit(raw, cap)
                tasks = ((doc.text, drop_ns) for doc, drop_ns in raw)
                results = pool.imap(_process, tasks, chunksize=8) if pool else map(_process, tasks)
                for sentences, doc_dropped in results:
                    bar.update()
                    src_stats["documents_read"] += 1
                    dropped.update(doc_dropped)
                    if dedupe:
                        kept = [s for s in sentences if deduper.is_new(s)]
                        dropped["dedupe"] += len(sentences) - len(kept)
                        sentences = kept
                    if not sentences:
                        dropped["empty_documents"] += 1
                        continue
                    writer.write(sentences)
                    chars = sum(len(s) for s in sentences)
                    residue_lines += len(sentences)
                    residue_bad += round(markup_residue(sentences) * len(sentences))
                    for key, value in (("documents", 1), ("sentences", len(sentences)), ("characters", chars)):
                        src_stats[key] += value
                        totals[key] += value
                src_stats.setdefault("truncated", False)
                if src_stats["truncated"]:
                    log.warning("%s: %s is truncated; its %d documents before the cut were kept "
                                "(corpus.keep_truncated = true)", name, path, src_stats["documents_read"])
            shards = list(writer.paths)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    lid_langs = {k[4:]: v for k, v in dropped.most_common() if k.startswith("lid:")}
    stats = {
        "lang": lang,
        "config": {**asdict(config), "lid_accept": list(config.lid_accept), "dedupe": dedupe, "max_docs_per_source": max_docs_per_source,
                   "keep_truncated": keep_truncated, "shard_lines": shard_lines},
        "documents": totals["documents"],
        "sentences": totals["sentences"],
        "characters": totals["characters"],
        "shards": [p.name for p in shards],
        "sources": per_source,
        "dropped": {key: sum(s.get(key, 0) for s in per_source.values())
                    for key in ("redirects", "disambiguation", "non_main_namespace")}
                   | {key: dropped[key] for key in ("lid", "dedupe", "min_chars", "empty_documents")},
        "lid_dropped_languages": dict(list(lid_langs.items())[:20]),
        "truncated": any(s.get("truncated") for s in per_source.values()),
        "markup_residue": residue_bad / residue_lines if residue_lines else 0.0,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_json(out_dir / "stats.json", stats)
    log.info("corpus %s: %d documents, %d sentences in %d shards", lang, stats["documents"],
             stats["sentences"], len(shards))
    return stats


def _limit(items: Iterator, n: int) -> Iterator:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def corpus_files(out_dir: Path) -> list[Path]:
    """The shard files of a built corpus, in order."""
    return sorted(p for p in Path(out_dir).iterdir() if _SHARD_RE.match(p.name))
