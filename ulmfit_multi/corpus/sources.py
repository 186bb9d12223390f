"""Raw-text sources: plain text files and folders, WikiExtractor output, compressed or not.

Compression is detected from the file's magic bytes (bz2, gzip, xz), not its name.
A plain text file yields one document per block of lines separated by blank lines, so a
large file streams; a WikiExtractor file yields one document per `<doc ...>...</doc>` block.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import html
import lzma
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from ..errors import DataError

_MAGIC = {b"BZh": "bz2", b"\x1f\x8b": "gz", b"\xfd7zXZ\x00": "xz"}
_DOC_OPEN = re.compile(r'^<doc\b([^>]*)>\s*$')
_DOC_ATTR = re.compile(r'(\w+)="([^"]*)"')
# a bz2 stream header followed by the first block's magic (pi in BCD); byte-aligned only at a stream start
_BZ2_STREAM_RE = re.compile(rb"BZh[1-9]1AY&SY")
_SEGMENT_BYTES = 4 << 20


@dataclass(frozen=True)
class Document:
    """One document of a source: `text` holds paragraphs separated by newlines."""

    id: str
    title: str
    text: str
    source: str


class CountingReader:
    """A read-only file wrapper that counts the (compressed) bytes handed out so far."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes and count them."""
        data = self._f.read(size)
        self.pos += len(data)
        return data

    read1 = read

    def close(self) -> None:
        """Close the underlying file."""
        self._f.close()


def compression_of(path: Path) -> str | None:
    """'bz2', 'gz', 'xz' from the magic bytes, or None for an uncompressed file."""
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def open_decompressed(path: Path) -> tuple[IO[bytes], CountingReader]:
    """Open `path` for binary reading, decompressing transparently; the counter tracks raw bytes read."""
    path = Path(path)
    kind = compression_of(path)
    counter = CountingReader(open(path, "rb"))
    if kind == "bz2":
        return bz2.BZ2File(counter), counter  # handles concatenated (multistream) bz2
    if kind == "gz":
        return gzip.GzipFile(fileobj=counter), counter
    if kind == "xz":
        return lzma.LZMAFile(counter), counter
    return counter, counter  # type: ignore[return-value]


def iter_chunks(path: Path, chunk_bytes: int = 1 << 20, workers: int = 1) -> Iterator[tuple[bytes, int]]:
    """(decompressed chunk, compressed bytes read so far), in order; decompression runs in other threads.

    A multistream bz2 file (concatenated streams, as Wikimedia's `*-multistream.xml.bz2`) is
    decompressed stream-parallel on `workers` threads (bz2 releases the GIL); anything else is
    decompressed sequentially, one thread ahead of the consumer.

    Raises:
        EOFError: the compressed data ends early (after yielding everything complete before it).
        OSError: the compressed data is corrupt.
    """
    path = Path(path)
    if workers > 1 and compression_of(path) == "bz2" and _is_multistream(path):
        yield from _parallel_bz2_chunks(path, workers)
        return
    stream, counter = open_decompressed(path)
    chunks: queue.Queue = queue.Queue(maxsize=16)  # at most 16 chunks decompressed ahead
    stop = threading.Event()

    def produce() -> None:
        # read1 makes one raw read at a time, so data decompressed before an error is still handed out
        parts: list[bytes] = []
        size = 0
        try:
            while not stop.is_set():
                part = stream.read1(chunk_bytes)
                parts.append(part)
                size += len(part)
                if size >= chunk_bytes or not part:
                    if size:
                        chunks.put((b"".join(parts), counter.pos, None))
                    parts, size = [], 0
                if not part:
                    chunks.put((b"", counter.pos, None))
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it in its own thread
            if size:
                chunks.put((b"".join(parts), counter.pos, None))
            e.compressed_pos = counter.pos  # type: ignore[attr-defined]
            chunks.put((b"", counter.pos, e))

    thread = threading.Thread(target=produce, name=f"decompress {path.name}", daemon=True)
    thread.start()
    try:
        while True:
            chunk, pos, error = chunks.get()
            if error is not None:
                raise error
            yield chunk, pos
            if not chunk:
                return
    finally:
        stop.set()
        while thread.is_alive():
            try:
                chunks.get(timeout=0.05)
            except queue.Empty:
                pass
        stream.close()
        counter.close()


def _is_multistream(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(_SEGMENT_BYTES)
    return _BZ2_STREAM_RE.search(head, 1) is not None


def _decompress_bz2_streams(data: bytes) -> tuple[bytes, BaseException | None]:
    """Decompress concatenated bz2 streams; returns what was complete and the error that stopped it."""
    out: list[bytes] = []
    while data:
        d = bz2.BZ2Decompressor()
        try:
            out.append(d.decompress(data))
        except OSError as e:
            return b"".join(out), e
        if not d.eof:
            return b"".join(out), EOFError("Compressed file ended before the end-of-stream marker was reached")
        data = d.unused_data
    return b"".join(out), None


def _parallel_bz2_chunks(path: Path, workers: int) -> Iterator[tuple[bytes, int]]:
    pending: collections.deque = collections.deque()
    with open(path, "rb") as f, ThreadPoolExecutor(workers, thread_name_prefix="bz2") as pool:
        buf = b""
        pos = 0

        def results(limit: int) -> Iterator[tuple[bytes, int]]:
            while len(pending) > limit:
                future, end = pending.popleft()
                data, error = future.result()
                if data:
                    yield data, end
                if error is not None:
                    error.compressed_pos = end  # type: ignore[attr-defined]
                    for later, _ in pending:
                        later.cancel()
                    pending.clear()
                    raise error

        while True:
            segment = f.read(_SEGMENT_BYTES)
            pos += len(segment)
            buf += segment
            # cut at the last stream start so every job holds whole streams
            cut = len(buf) if not segment else max((m.start() for m in _BZ2_STREAM_RE.finditer(buf, 1)), default=0)
            if cut:
                pending.append((pool.submit(_decompress_bz2_streams, buf[:cut]), pos - len(buf) + cut))
                buf = buf[cut:]
            yield from results(2 * workers)
            if not segment:
                break
        yield from results(0)
    yield b"", pos


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without newline); DataError on invalid UTF-8 or corrupt compression."""
    stream, counter = open_decompressed(path)
    line_no = 0
    try:
        buf = b""
        while True:
            try:
                chunk = stream.read(1 << 20)
            except (EOFError, OSError, lzma.LZMAError) as e:
                raise DataError(f"{path}: corrupt or truncated compressed data after {counter.pos} "
                                f"compressed bytes (line {line_no + 1}): {e}") from e
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line_no += 1
                yield line_no, _decode(raw, path, line_no)
        if buf:
            line_no += 1
            yield line_no, _decode(buf, path, line_no)
    finally:
        stream.close()
        counter.close()


def _decode(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at line {line_no}, byte {e.start} of the line") from e


def list_files(path: Path) -> list[Path]:
    """`path` itself, or every non-hidden file under the folder, sorted by relative path."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = [p for p in path.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    return sorted(files, key=lambda p: p.relative_to(path).as_posix())


def iter_text_documents(path: Path, source: str = "") -> Iterator[Document]:
    """Documents from plain text files: one per block of lines separated by blank lines."""
    path = Path(path)
    for file in list_files(path):
        rel = file.name if file == path else file.relative_to(path).as_posix()
        block: list[str] = []
        start = 0
        for line_no, line in iter_lines(file):
            if line.strip():
                if not block:
                    start = line_no
                block.append(line)
            elif block:
                yield Document(f"{rel}:{start}", rel, "\n".join(block), source)
                block = []
        if block:
            yield Document(f"{rel}:{start}", rel, "\n".join(block), source)


def _wikiextractor_files(path: Path) -> list[Path]:
    files = list_files(path)
    if path.is_dir():
        own = [f for f in files if f.name.startswith("wiki_")]
        return own or files
    return files


def iter_wikiextractor_documents(path: Path, source: str = "") -> Iterator[Document]:
    """Documents from WikiExtractor output files (`<doc id url title>` blocks); the repeated title line is dropped.

    In a folder, only WikiExtractor's own files (`AA/wiki_00` ...) are read when there are any, so a README or
    licence file shipped beside them is not taken for a corrupt chunk.
    """
    for file in _wikiextractor_files(Path(path)):
        attrs: dict[str, str] | None = None
        lines: list[str] = []
        open_line = 0
        for line_no, line in iter_lines(file):
            if attrs is None:
                m = _DOC_OPEN.match(line)
                if m:
                    attrs = {k: html.unescape(v) for k, v in _DOC_ATTR.findall(m.group(1))}
                    lines, open_line = [], line_no
                elif line.strip():
                    raise DataError(f"{file}: line {line_no}: text outside a <doc> block "
                                    f"(not WikiExtractor output?)")
            elif line.strip() == "</doc>":
                title = attrs.get("title", "")
                if lines and lines[0].strip() == title:
                    lines = lines[1:]
                yield Document(attrs.get("id", f"{file.name}:{open_line}"), title, "\n".join(lines).strip(), source)
                attrs = None
            else:
                lines.append(line)
        if attrs is not None:
            raise DataError(f"{file}: line {open_line}: <doc> block never closed")
