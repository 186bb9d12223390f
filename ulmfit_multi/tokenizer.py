"""SentencePiece training, loading, and parallel encoding of corpus shards into a token memmap.

Corpus format read here: UTF-8 text, one sentence per line, documents separated by a blank line.
Encoded output (see `tokens.TokenStore`): tokens.npy (flat ids, each sentence followed by EOS_ID),
offsets.npy (int64, n_docs+1 document boundaries) and meta.json.

This module does not import torch, so encoding workers start fast.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import IO, Iterator, NamedTuple, Sequence

import numpy as np
import sentencepiece as spm

from ulmfit_multi.atomic import atomic_write, sha256_file, write_json
from ulmfit_multi.errors import DataError

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_NAME, VOCAB_NAME, META_NAME = "spm.model", "spm.vocab", "tokenizer.json"
_CHUNK_BYTES = 1 << 20  # text per encoding task: large enough to amortize pickling, small enough to stream
_RANDOM_BLOCK = 1 << 16


# ---------------------------------------------------------------- training


def _normalize_inputs(inputs: Sequence[Path] | Sequence[tuple[Path, float]]) -> list[tuple[Path, float | None]]:
    """[(path, weight or None)]; None means 'natural share' (plain paths)."""
    out: list[tuple[Path, float | None]] = []
    for item in inputs:
        path, weight = (item if isinstance(item, tuple) else (item, None))
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: tokenizer input file not found")
        if weight is not None and not weight > 0:
            raise DataError(f"{path}: weight must be > 0, got {weight}")
        out.append((path, None if weight is None else float(weight)))
    if not out:
        raise DataError("train_tokenizer: no input files")
    if len({w is None for _, w in out}) > 1:
        raise DataError("train_tokenizer: give either all paths weighted (path, weight) or none")
    return out


def _nonempty_lines(path: Path) -> Iterator[str]:
    """Non-blank lines of a UTF-8 file, without the newline; errors name file and line."""
    with open(path, encoding="utf-8", newline="\n") as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno + 1}: not valid UTF-8 ({e.reason})") from e


def _quotas(counts: list[int], weights: list[float | None], max_sentences: int) -> list[int]:
    """Sentences to draw from each source: natural shares when unweighted, weight shares otherwise."""
    total = sum(counts)
    n = min(max_sentences, total)
    if weights[0] is None:
        shares = [c / total if total else 0.0 for c in counts]
    else:
        s = sum(weights)  # type: ignore[arg-type]
        shares = [w / s for w in weights]  # type: ignore[operator]
    quotas = [int(n * sh) for sh in shares]
    # hand the rounding remainder to the largest fractional parts so the total is exactly n
    rest = n - sum(quotas)
    order = sorted(range(len(counts)), key=lambda i: -(n * shares[i] - quotas[i]))
    for i in order[:rest]:
        quotas[i] += 1
    return quotas


def _selection_sample(lines: Iterator[str], count: int, k: int, rng: np.random.Generator) -> Iterator[str]:
    """Knuth's algorithm S: exactly k of `count` lines, uniform, in file order, O(1) memory."""
    needed, remaining = k, count
    u = rng.random(_RANDOM_BLOCK)
    j = 0
    for line in lines:
        if needed == 0:
            return
        if j == len(u):
            u, j = rng.random(_RANDOM_BLOCK), 0
        if u[j] * remaining < needed:
            needed -= 1
            yield line
        j += 1
        remaining -= 1


def _sample_sentences(sources: list[tuple[Path, float | None]], counts: list[int], quotas: list[int],
                      seed: int) -> Iterator[str]:
    """Yield each source's quota; a source asked for more than it has is repeated (oversampled)."""
    for i, ((path, _), count, quota) in enumerate(zip(sources, counts, quotas)):
        if count == 0 or quota == 0:
            continue
        rng = np.random.default_rng([seed, i])
        full, part = divmod(quota, count)
        for _ in range(full):
            yield from _nonempty_lines(path)
        if part:
            yield from _selection_sample(_nonempty_lines(path), count, part, rng)


def train_tokenizer(inputs: list[Path] | list[tuple[Path, float]], out_dir: Path, *, vocab_size: int,
                    model_type: str = "unigram", character_coverage: float = 0.9995,
                    max_sentences: int = 1_000_000, seed: int = 0,
                    user_defined_symbols: Sequence[str] = (), hard_vocab_limit: bool = True) -> Path:
    """Train SentencePiece on a seeded, weighted sample of lines; write spm.model, spm.vocab, tokenizer.json.

    Weights set each source's share of the (at most `max_sentences`) sampled sentences; a source too small
    for its share is repeated. Plain paths are sampled uniformly over all their lines.

    Raises:
        DataError: missing/invalid input, or `vocab_size` too large for the data (with `hard_vocab_limit`).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    sources = _normalize_inputs(inputs)
    counts = [sum(1 for _ in _nonempty_lines(p)) for p, _ in sources]
    if sum(counts) == 0:
        raise DataError(f"{sources[0][0]}: no non-empty lines in tokenizer inputs")
    quotas = _quotas(counts, [w for _, w in sources], max_sentences)

    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_sample_sentences(sources, counts, quotas, seed), model_writer=model,
            vocab_size=vocab_size, model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            user_defined_symbols=list(user_defined_symbols), hard_vocab_limit=hard_vocab_limit,
            input_sentence_size=0, shuffle_input_sentence=False,
            # one thread: multi-threaded EM in the unigram trainer is not bit-reproducible
            num_threads=1, minloglevel=2,
        )
    except RuntimeError as e:
        msg = str(e)
        m = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", msg)
        if m:
            raise DataError(f"{sources[0][0]}: vocab_size={m.group(1)} is too large for this text "
                            f"({sum(quotas)} sentences); use vocab_size <= {m.group(2)} "
                            f"or hard_vocab_limit=False") from e
        raise DataError(f"{sources[0][0]}: SentencePiece training failed: {msg}") from e

    model_path = out_dir / MODEL_NAME
    with atomic_write(model_path, "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    with atomic_write(out_dir / VOCAB_NAME) as f:
        for i in range(sp.get_piece_size()):
            f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
    write_json(out_dir / META_NAME, {
        "vocab_size": sp.get_piece_size(), "requested_vocab_size": vocab_size, "model_type": model_type,
        "character_coverage": character_coverage, "seed": seed, "max_sentences": max_sentences,
        "user_defined_symbols": list(user_defined_symbols), "hard_vocab_limit": hard_vocab_limit,
        "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        "inputs": [{"path": str(p), "sha256": sha256_file(p), "weight": w, "lines": c, "sampled": q}
                   for (p, w), c, q in zip(sources, counts, quotas)],
        "sentences": sum(quotas), "sha256": sha256_file(model_path),
        "sentencepiece_version": spm.__version__, "seconds": round(time.perf_counter() - t0, 3),
    })
    return model_path


# ---------------------------------------------------------------- loading


def _model_path(path: Path) -> Path:
    path = Path(path)
    model = path / MODEL_NAME if path.is_dir() else path
    if not model.is_file():
        raise DataError(f"{model}: SentencePiece model not found")
    return model


class Tokenizer:
    """A loaded SentencePiece model with the toolkit's fixed special ids."""

    def __init__(self, model_path: Path):
        self.model_path = _model_path(model_path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        except (OSError, RuntimeError) as e:
            raise DataError(f"{self.model_path}: not a SentencePiece model ({e})") from e
        self.checksum: str = sha256_file(self.model_path)
        self.vocab_size: int = self.sp.get_piece_size()
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (
            self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())

    @classmethod
    def load(cls, path: Path) -> "Tokenizer":
        """Load from a directory holding spm.model, or from the .model file itself."""
        return cls(path)

    def encode(self, texts: list[str], *, sample: bool = False, alpha: float = 0.1,
               nbest: int = -1) -> list[list[int]]:
        """Token ids per text; `sample=True` draws a segmentation (subword regularization)."""
        if sample:
            # one text per call, on this thread: a batch call runs on fresh worker threads whose random
            # generators are all seeded from the global seed (set by train_tokenizer), so every batch
            # call would draw the same "sample"; this thread's generator advances from call to call
            return [self.sp.encode(t, out_type=int, enable_sampling=True, alpha=alpha, nbest_size=nbest)
                    for t in texts]
        return self.sp.encode(list(texts), out_type=int)

    def encode_documents(self, texts: list[str], *, boundary: str = "eos", sample: bool = False) -> list[list[int]]:
        """Token ids of task documents (already prepared text), each started by the document boundary.

        boundary "eos": the EOS id first, the separator the pretraining corpus has after every sentence, so
        documents concatenated for LM fine-tuning stay apart and a reversed (backward) document ends on it;
        "none": no boundary, an empty document then becomes [EOS] (a classifier needs one token).
        The encode stage and `Predictor` both call this: training and prediction see the same ids.
        """
        docs = self.encode(texts, sample=sample)
        if boundary == "eos":
            return [[self.eos_id, *d] for d in docs]
        if boundary == "none":
            return [d if d else [self.eos_id] for d in docs]
        raise ValueError(f"unknown document boundary {boundary!r}; expected 'eos' or 'none'")

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ids; control ids (pad, bos, eos) decode to nothing."""
        return self.sp.decode([int(i) for i in ids])

    def pieces(self, text: str) -> list[str]:
        """Subword pieces of one text."""
        return self.sp.encode(text, out_type=str)

    def vocab(self) -> list[str]:
        """Every piece, by id."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_path}, vocab_size={self.vocab_size}, sha256={self.checksum[:12]})"


# ---------------------------------------------------------------- growable .npy


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id (0 .. vocab_size-1) fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65_536 else np.uint32)


class NpyAppender:
    """Append 1-D chunks to an open .npy file whose header is rewritten with the final length at close.

    numpy pads v1 headers with room for a 21-digit growth axis, so the header length is unchanged.
    """

    def __init__(self, f: IO[bytes], dtype: np.dtype):
        self.f, self.dtype, self.n = f, np.dtype(dtype), 0
        self._write_header()
        self.data_start = f.tell()

    def _write_header(self) -> None:
        np.lib.format.write_array_header_1_0(self.f, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.n,)})

    def append(self, arr: np.ndarray) -> None:
        """Write `arr` (cast to the file dtype) at the end."""
        self.f.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.n += len(arr)

    def close(self) -> None:
        """Rewrite the header with the final shape."""
        end = self.f.tell()
        self.f.seek(0)
        self._write_header()
        if self.f.tell() != self.data_start:
            raise RuntimeError("npy header changed size while growing")
        self.f.seek(end)


# ---------------------------------------------------------------- corpus encoding

class _Encoded(NamedTuple):
    """One encoded block of whole lines."""

    tokens: np.ndarray  # (n_tokens,) ids, EOS after each sentence, in the output dtype
    doc_ends: np.ndarray  # token positions (relative) where a blank line closes a document
    lead_blank: bool  # a blank line comes before the block's first sentence: it closes an open document
    tail_open: bool  # the last sentence is not followed by a blank line inside the block
    sentences: int
    unk: int
    words: int
    text_bytes: int  # bytes of the block as read (newlines included)


def _count_words(data: bytes) -> int:
    """Runs of non-whitespace (ASCII whitespace) in UTF-8 text, vectorized."""
    b = np.frombuffer(data, dtype=np.uint8)
    space = (b == 32) | ((b >= 9) & (b <= 13))
    return int(np.count_nonzero(~space[1:] & space[:-1])) + int(len(b) > 0 and not space[0])


def _encode_block(sp: spm.SentencePieceProcessor, dtype: np.dtype, threads: int, block: bytes, path: str,
                  first_line: int) -> _Encoded:
    """Decode, split and encode a block of whole lines; SentencePiece spreads the lines over `threads`."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + block.count(b"\n", 0, e.start)
        raise DataError(f"{path}:{line}: not valid UTF-8 ({e.reason})") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    blank = np.fromiter((not line or line.isspace() for line in lines), dtype=bool, count=len(lines))
    sentences = list(itertools.compress(lines, ~blank))
    n = len(sentences)
    sentence_of_line = np.cumsum(~blank) - 1  # index of the last sentence at or before each line
    ends = np.unique(sentence_of_line[blank & (sentence_of_line >= 0)])  # sentences a blank line follows
    ids = sp.encode(sentences, out_type=int, add_eos=True, num_threads=threads) if n else []  # model's eos = EOS_ID
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lens.sum()))
    lead_blank, tail_open = bool(len(lines)) and bool(blank[0]), bool(n) and not blank[-1]
    return _Encoded(tokens, np.cumsum(lens)[ends], lead_blank, tail_open, n,
                    int(np.count_nonzero(tokens == UNK_ID)), _count_words(block), len(block))


def _read_blocks(text_files: Sequence[Path], chunk_bytes: int) -> Iterator[tuple[bytes, str, int, bool]]:
    """(block of whole lines, path, its first line number, last block of its file), in corpus order."""
    for path in text_files:
        if not Path(path).is_file():
            raise DataError(f"{path}: corpus shard not found")
        line = 1
        with open(path, "rb") as f:
            block = f.read(chunk_bytes)
            while block:
                block += f.readline()  # end on a line boundary
                nxt = f.read(chunk_bytes)
                yield block, str(path), line, not nxt
                line += block.count(b"\n")
                block = nxt


def encode_corpus(tokenizer_path: Path, text_files: list[Path], out_dir: Path, *, workers: int = 0,
                  progress: bool = True, chunk_bytes: int = _CHUNK_BYTES) -> dict:
    """Encode corpus shards into out_dir/{tokens.npy, offsets.npy, meta.json}; return meta.

    A document is the sentences between blank lines (or a shard's end); each sentence is followed by EOS_ID.
    Shards are read in blocks of whole lines (`chunk_bytes`), each block encoded by SentencePiece's own
    thread pool (`workers` threads, default all cores; no pickling, unlike a process pool, which measured
    slower) and appended to growable .npy files, so memory stays flat whatever the corpus size. Output is
    identical for any `workers` and `chunk_bytes`. meta: `unk_rate` and `tokens_per_word` count pieces, not EOS;
    words are runs of non-whitespace; `text_bytes` are the bytes read.
    """
    t0 = time.perf_counter()
    model = _model_path(tokenizer_path)
    tok = Tokenizer(model)
    if tok.eos_id != EOS_ID:
        raise DataError(f"{model}: eos id is {tok.eos_id}, expected {EOS_ID} (train it with train_tokenizer)")
    text_files = [Path(p) for p in text_files]
    workers = workers or os.cpu_count() or 1
    dtype = token_dtype(tok.vocab_size)
    out_dir = Path(out_dir)
    total_bytes = sum(p.stat().st_size for p in text_files if p.is_file())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="encode", mininterval=1.0)
    n_tokens = n_unk = n_words = n_bytes = n_sents = 0
    with atomic_write(out_dir / "tokens.npy", "wb") as ft, atomic_write(out_dir / "offsets.npy", "wb") as fo:
        tokens, offsets = NpyAppender(ft, dtype), NpyAppender(fo, np.dtype(np.int64))
        offsets.append(np.zeros(1, np.int64))
        doc_open = False
        for block, path, line, last_in_file in _read_blocks(text_files, chunk_bytes):
            enc, size = _encode_block(tok.sp, dtype, workers, block, path, line), len(block)
            if enc.lead_blank and doc_open:
                offsets.append(np.array([n_tokens]))
                doc_open = False
            tokens.append(enc.tokens)
            offsets.append(n_tokens + enc.doc_ends)
            n_tokens += len(enc.tokens)
            if enc.sentences:
                doc_open = enc.tail_open
            if last_in_file and doc_open:  # the end of a shard ends its last document
                offsets.append(np.array([n_tokens]))
                doc_open = False
            n_sents += enc.sentences
            n_unk, n_words, n_bytes = n_unk + enc.unk, n_words + enc.words, n_bytes + enc.text_bytes
            if bar is not None:
                bar.update(size)
                bar.set_postfix_str(f"{n_tokens / (time.perf_counter() - t0):,.0f} tok/s", refresh=False)
        if n_tokens == 0:
            raise DataError(f"{text_files[0] if text_files else out_dir}: no text to encode")
        tokens.close()
        offsets.close()
        n_docs = offsets.n - 1
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    n_pieces = max(n_tokens - n_sents, 1)
    # tokens/words/unk rate count subword pieces, not the EOS appended to each sentence
    meta = {
        "format": "ulmfit_multi.tokens/1", "tokenizer_sha256": tok.checksum, "tokenizer": str(model),
        "vocab_size": tok.vocab_size, "dtype": dtype.name, "eos_id": EOS_ID, "pad_id": PAD_ID,
        "tokens": n_tokens, "documents": n_docs, "sentences": n_sents, "words": n_words,
        "unk_rate": n_unk / n_pieces, "tokens_per_word": round(n_pieces / max(n_words, 1), 4),
        "text_bytes": n_bytes, "inputs": [{"path": str(p), "size": p.stat().st_size} for p in text_files],
        "workers": workers, "seconds": round(seconds, 3),
        "mb_per_second": round(n_bytes / 1e6 / max(seconds, 1e-9), 3),
        "tokens_per_second": round(n_tokens / max(seconds, 1e-9)),
    }
    write_json(out_dir / "meta.json", meta)
    log.info("encoded %s tokens, %s docs in %.1fs", f"{n_tokens:,}", f"{n_docs:,}", seconds)
    return meta

