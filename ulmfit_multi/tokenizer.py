"""SentencePiece tokenizer: training on a bounded sample, parallel encoding to a token memmap.

Fixed ids: pad 0, unk 1, bos 2, eos 3. A tokenizer folder is self-contained: `spm.model`,
`spm.vocab` and `tokenizer.json` (metadata incl. the model's sha256), so a classifier can ship with it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from .atomic import atomic_write, read_json, sha256_file, write_json
from .errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
LINES_PER_CHUNK = 2_000


def _iter_lines(paths: Sequence[Path]) -> Iterator[tuple[Path, int, str]]:
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    yield path, lineno, raw.decode("utf-8").rstrip("\n")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}:{lineno}: invalid UTF-8 ({e.reason})") from None


def sample_sentences(inputs: Sequence[Path] | Sequence[tuple[Path, float]], max_sentences: int,
                     seed: int = 0) -> list[str]:
    """A deterministic reservoir sample of non-empty lines; (path, weight) pairs set each source's share."""
    weighted = [(Path(p[0]), float(p[1])) if isinstance(p, tuple) else (Path(p), 1.0) for p in inputs]
    total_w = sum(w for _, w in weighted) or 1.0
    rng = random.Random(seed)
    out: list[str] = []
    for path, weight in weighted:
        quota = max(1, int(max_sentences * weight / total_w))
        reservoir: list[str] = []
        for i, (_, _, line) in enumerate((t for t in _iter_lines([path]) if t[2].strip())):
            if len(reservoir) < quota:
                reservoir.append(line)
            else:
                j = rng.randint(0, i)
                if j < quota:
                    reservoir[j] = line
        out.extend(reservoir)
    return out


def train_tokenizer(inputs: list[Path] | list[tuple[Path, float]], out_dir: Path, *, vocab_size: int,
                    model_type: str = "unigram", character_coverage: float = 0.9995,
                    max_sentences: int = 1_000_000, seed: int = 0,
                    user_defined_symbols: Sequence[str] = ()) -> Path:
    """Train SentencePiece on a bounded sample of the inputs; writes spm.model, spm.vocab, tokenizer.json."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = sample_sentences(inputs, max_sentences, seed)
    if not sentences:
        raise DataError(f"tokenizer: no text in {[str(p) for p in inputs]}")
    spm.set_random_generator_seed(seed)
    prefix = out_dir / ".spm-training"
    kwargs = dict(
        sentence_iterator=iter(sentences), model_prefix=str(prefix), vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        user_defined_symbols=list(user_defined_symbols), input_sentence_size=0, shuffle_input_sentence=False,
        hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    try:
        spm.SentencePieceTrainer.train(**kwargs)
    except RuntimeError as e:
        raise DataError(f"tokenizer: SentencePiece training failed on {len(sentences)} sentences: {e}") from None
    os.replace(f"{prefix}.model", out_dir / "spm.model")
    os.replace(f"{prefix}.vocab", out_dir / "spm.vocab")
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "spm.model"))
    write_json(out_dir / "tokenizer.json", {
        "vocab_size": sp.get_piece_size(), "requested_vocab_size": vocab_size, "model_type": model_type,
        "character_coverage": character_coverage, "seed": seed, "sentences": len(sentences),
        "inputs": [{"path": str(p if not isinstance(p, tuple) else p[0]),
                    "weight": 1.0 if not isinstance(p, tuple) else p[1]} for p in inputs],
        "user_defined_symbols": list(user_defined_symbols), "sha256": sha256_file(out_dir / "spm.model"),
        "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
    })
    return out_dir / "spm.model"


class Tokenizer:
    """A loaded SentencePiece model with the toolkit's fixed special ids."""

    def __init__(self, model_path: Path):
        import sentencepiece as spm

        self.model_path = Path(model_path)
        if not self.model_path.exists():
            raise DataError(f"{self.model_path}: no SentencePiece model here")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id, self.unk_id, self.eos_id = PAD_ID, UNK_ID, EOS_ID
        meta = self.model_path.with_name("tokenizer.json")
        self.checksum = read_json(meta)["sha256"] if meta.exists() else sha256_file(self.model_path)

    @classmethod
    def load(cls, path: Path) -> "Tokenizer":
        """Load from a tokenizer folder or a .model file."""
        path = Path(path)
        return cls(path / "spm.model" if path.is_dir() else path)

    def encode(self, texts: list[str], *, sample: bool = False, alpha: float = 0.1,
               nbest: int = -1) -> list[list[int]]:
        """Token ids of each text; `sample` draws a subword segmentation (subword regularization)."""
        if sample:
            return self.sp.encode(texts, out_type=int, enable_sampling=True, alpha=alpha, nbest_size=nbest)
        return self.sp.encode(texts, out_type=int)

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return self.sp.decode([int(i) for i in ids])

    def pieces(self, text: str) -> list[str]:
        """Subword pieces of a text."""
        return self.sp.encode(text, out_type=str)

    def vocab(self) -> list[str]:
        """Every piece, by id."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]


_WORKER: Tokenizer | None = None


def _init_worker(model_path: str) -> None:
    global _WORKER
    _WORKER = Tokenizer(Path(model_path))


def _encode_chunk(lines: list[str]) -> tuple[list[np.ndarray], list[bool], int, int]:
    """Encode a chunk of corpus lines; returns arrays (with EOS), document-end flags, words and unknowns."""
    assert _WORKER is not None
    texts = [ln for ln in lines if ln.strip()]
    ids = _WORKER.encode(texts) if texts else []
    out, ends, words, unk = [], [], 0, 0
    it = iter(ids)
    for ln in lines:
        if not ln.strip():
            ends.append(True)
            out.append(np.empty(0, dtype=np.int64))
            continue
        seq = next(it)
        words += len(ln.split())
        unk += sum(1 for t in seq if t == UNK_ID)
        out.append(np.asarray(seq + [EOS_ID], dtype=np.int64))
        ends.append(False)
    return out, ends, words, unk


def _chunks(paths: Sequence[Path]) -> Iterator[list[str]]:
    buf: list[str] = []
    for path in paths:
        for _, _, line in _iter_lines([path]):
            buf.append(line)
            if len(buf) >= LINES_PER_CHUNK:
                yield buf
                buf = []
        buf.append("")  # a file end is a document end
    if buf:
        yield buf


def encode_corpus(tokenizer_path: Path, text_files: list[Path], out_dir: Path, *, workers: int = 0,
                  progress: bool = True) -> dict:
    """Encode corpus shards (one sentence a line, blank line between documents) into tokens.npy + offsets.npy.

    Token ids stream to a raw temporary file (so corpora larger than RAM work), then get an .npy header:
    uint16 when the vocabulary fits, else uint32. Chunks are encoded in a process pool, in order.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.load(tokenizer_path)
    dtype = np.uint16 if tok.vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32
    raw = out_dir / ".tokens.raw"
    offsets = [0]
    n_tokens = words = unk = 0
    doc_open = False
    workers = workers or os.cpu_count() or 1
    total_bytes = sum(p.stat().st_size for p in text_files)
    with open(raw, "wb") as f, tqdm(unit=" lines", unit_scale=True, desc="encode", disable=not progress,
                                     leave=False) as bar:
        pool = Pool(workers, initializer=_init_worker, initargs=(str(tok.model_path),)) if workers > 1 else None
        if pool is None:
            _init_worker(str(tok.model_path))
        try:
            results = pool.imap(_encode_chunk, _chunks(text_files), chunksize=1) if pool else map(
                _encode_chunk, _chunks(text_files))
            for arrays, ends, w, u in results:
                words += w
                unk += u
                for arr, end in zip(arrays, ends):
                    if end:
                        if doc_open:
                            offsets.append(n_tokens)
                            doc_open = False
                        continue
                    f.write(arr.astype(dtype).tobytes())
                    n_tokens += len(arr)
                    doc_open = True
                bar.update(len(arrays))
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    if doc_open:
        offsets.append(n_tokens)
    if n_tokens == 0:
        raw.unlink(missing_ok=True)
        raise DataError(f"encode: no tokens in {[str(p) for p in text_files]}")
    _raw_to_npy(raw, out_dir / "tokens.npy", dtype, n_tokens)
    with atomic_write(out_dir / "offsets.npy", "wb") as f:
        np.save(f, np.asarray(offsets, dtype=np.int64))
    seconds = time.perf_counter() - started
    meta = {
        "tokenizer_sha256": tok.checksum, "vocab_size": tok.vocab_size, "dtype": np.dtype(dtype).name,
        "tokens": n_tokens, "documents": len(offsets) - 1, "words": words,
        "tokens_per_word": round(n_tokens / max(words, 1), 4), "unk_rate": unk / max(n_tokens, 1),
        "text_bytes": total_bytes, "seconds": round(seconds, 3),
        "mb_per_second": round(total_bytes / 1e6 / max(seconds, 1e-9), 3),
        "tokens_per_second": round(n_tokens / max(seconds, 1e-9), 1),
        "inputs": [str(p) for p in text_files],
    }
    write_json(out_dir / "meta.json", meta)
    return meta


def _raw_to_npy(raw: Path, dest: Path, dtype: type, n: int) -> None:
    """Prepend an .npy header to a raw token file without reading it into memory."""
    import shutil

    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                   "fortran_order": False, "shape": (n,)})
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 22)
    raw.unlink()
    os.replace(tmp, dest)
