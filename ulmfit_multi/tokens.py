"""Encoded corpora and the batches the trainers read.

- `TokenStore`: tokens.npy (memory-mapped, uint16/uint32) + offsets.npy (document boundaries) + meta.json.
- `LMStream`: the AWD-LSTM/ULMFiT stream layout. The token stream (rotated by a fresh random offset
  each epoch, reversed for the backward LM) is cut into `batch_size` contiguous rows, read in BPTT
  windows of randomly varied length. Only index arithmetic touches the memmap: memory stays flat.
- `ClassifierBatches`: documents bucketed by length (sortish sampling), right-padded per batch.
  Documents longer than `max_len` keep their last `max_len` tokens: the classifier reads a document
  in BPTT chunks and only the last `max_len` positions feed the pooling head, as in ULMFiT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write, write_json
from .errors import DataError

PAD_ID = 0


class TokenStore:
    """A memory-mapped encoded corpus (tokens.npy + offsets.npy + meta.json)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, meta: dict, directory: Path):
        self.tokens, self.offsets, self.meta, self.directory = tokens, offsets, meta, directory

    @classmethod
    def open(cls, directory: Path) -> "TokenStore":
        """Open a token store folder read-only."""
        directory = Path(directory)
        for name in ("tokens.npy", "offsets.npy", "meta.json"):
            if not (directory / name).exists():
                raise DataError(f"{directory / name}: missing (was the encode stage run?)")
        tokens = np.load(directory / "tokens.npy", mmap_mode="r")
        offsets = np.load(directory / "offsets.npy")
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        return cls(tokens, offsets, meta, directory)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        """Token ids of document i (a view)."""
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def split(self, valid_frac: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Train/valid token views: the last `valid_frac` of the documents are validation."""
        n_docs = len(self)
        n_valid = int(round(n_docs * valid_frac)) if n_docs > 1 else 0
        cut = int(self.offsets[n_docs - n_valid]) if n_valid else len(self.tokens)
        return self.tokens[:cut], self.tokens[cut:]


def write_token_store(docs: Iterable[Sequence[int]], out_dir: Path, *, vocab_size: int,
                      meta: dict | None = None) -> None:
    """Write an in-memory list of token-id documents as a TokenStore (used for task text)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(d, dtype=np.int64) for d in docs]
    dtype = np.uint16 if vocab_size <= 65_536 else np.uint32
    tokens = np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype=dtype)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    with atomic_write(out_dir / "tokens.npy", "wb") as f:
        np.save(f, tokens)
    with atomic_write(out_dir / "offsets.npy", "wb") as f:
        np.save(f, offsets)
    write_json(out_dir / "meta.json", {"vocab_size": vocab_size, "dtype": np.dtype(dtype).name,
                                       "tokens": int(len(tokens)), "documents": len(arrays), **(meta or {})})


class LMStream:
    """ULMFiT/AWD-LSTM language-model batches read straight from a token array (e.g. a memmap)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, bptt: int, *, backwards: bool = False,
                 seed: int = 0, vary_bptt: bool = True, shuffle_offset: bool = True):
        if len(tokens) < batch_size * 2 + 1:
            raise DataError(f"LM stream: {len(tokens)} tokens is too few for batch size {batch_size}")
        self.tokens, self.batch_size, self.bptt = tokens, batch_size, bptt
        self.backwards, self.seed, self.vary_bptt, self.shuffle_offset = backwards, seed, vary_bptt, shuffle_offset
        self.n_tokens = len(tokens)
        self.row_len = (self.n_tokens - 1) // batch_size  # each row needs one extra token for y

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def _seq_lens(self, epoch: int) -> list[int]:
        """BPTT window lengths for an epoch: bptt (p=0.95) or bptt/2, jittered by N(0, 5), at least 5."""
        rng = self._rng(epoch)
        rng.integers(self.n_tokens)  # the offset draw comes first (see _offset)
        lens, pos = [], 0
        while pos < self.row_len - 1:
            if self.vary_bptt:
                base = self.bptt if rng.random() < 0.95 else self.bptt / 2
                n = max(5, int(rng.normal(base, 5)))
                n = min(n, self.bptt + 20)
            else:
                n = self.bptt
            n = min(n, self.row_len - 1 - pos)
            lens.append(n)
            pos += n
        return lens

    def _offset(self, epoch: int) -> int:
        return int(self._rng(epoch).integers(self.n_tokens)) if self.shuffle_offset else 0

    def num_batches(self, epoch: int) -> int:
        """Number of batches in an epoch (deterministic for the seed)."""
        return len(self._seq_lens(epoch))

    def _rows(self, epoch: int, start: int, length: int) -> np.ndarray:
        """(batch_size, length) block of the rotated (and possibly reversed) stream."""
        offset = self._offset(epoch)
        idx = (np.arange(self.batch_size)[:, None] * self.row_len + start + np.arange(length)[None, :])
        idx = (idx + offset) % self.n_tokens
        if self.backwards:
            idx = self.n_tokens - 1 - idx
        return np.asarray(self.tokens[idx.ravel()], dtype=np.int64).reshape(self.batch_size, length)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) LongTensors of shape (batch_size, seq_len); y is x shifted by one; skips `start` batches."""
        lens = self._seq_lens(epoch)
        pos = sum(lens[:start])
        for n in lens[start:]:
            block = self._rows(epoch, pos, n + 1)
            pos += n
            yield torch.from_numpy(block[:, :-1].copy()), torch.from_numpy(block[:, 1:].copy())


class ClassifierBatches:
    """Length-bucketed, right-padded classifier batches."""

    def __init__(self, docs: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int, *,
                 pad_id: int = PAD_ID, shuffle: bool = True, seed: int = 0, max_len: int | None = None,
                 backwards: bool = False, resample: Callable[[int], Sequence[int]] | None = None):
        self.docs = [np.asarray(d, dtype=np.int64) for d in docs]
        if any(len(d) == 0 for d in self.docs):
            raise DataError("classifier batches: empty document (encode empty texts as a single EOS)")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size, self.pad_id, self.shuffle, self.seed = batch_size, pad_id, shuffle, seed
        self.max_len, self.backwards, self.resample = max_len, backwards, resample
        self.lengths = np.array([min(len(d), max_len or len(d)) for d in self.docs])

    def __len__(self) -> int:
        return (len(self.docs) + self.batch_size - 1) // self.batch_size

    def order(self, epoch: int) -> list[np.ndarray]:
        """Index batches for an epoch: sortish when shuffling, by descending length otherwise."""
        bs = self.batch_size
        if not self.shuffle:
            idx = np.argsort(-self.lengths, kind="stable")
            return [idx[i:i + bs] for i in range(0, len(idx), bs)]
        rng = np.random.default_rng([self.seed, epoch])
        idx = rng.permutation(len(self.docs))
        mega = bs * 50
        sorted_chunks = [c[np.argsort(-self.lengths[c], kind="stable")] for c in
                         (idx[i:i + mega] for i in range(0, len(idx), mega))]
        idx = np.concatenate(sorted_chunks)
        batches = [idx[i:i + bs] for i in range(0, len(idx), bs)]
        longest = int(np.argmax([self.lengths[b].max() for b in batches]))
        first, rest = batches[longest], batches[:longest] + batches[longest + 1:]
        perm = rng.permutation(len(rest))
        return [first] + [rest[i] for i in perm]  # largest batch first: out-of-memory shows at once

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """(x (bs, T) right-padded, lengths (bs,), y (bs,) or None, idx (bs,) original document indices)."""
        for b in self.order(epoch):
            seqs = [np.asarray(self.resample(int(i)), dtype=np.int64) if self.resample else self.docs[i] for i in b]
            if self.max_len:
                seqs = [s[-self.max_len:] for s in seqs]
            if self.backwards:
                seqs = [s[::-1] for s in seqs]
            lengths = np.array([len(s) for s in seqs])
            x = np.full((len(seqs), int(lengths.max())), self.pad_id, dtype=np.int64)
            for row, s in enumerate(seqs):
                x[row, :len(s)] = s
            y = None if self.labels is None else torch.from_numpy(self.labels[b])
            yield torch.from_numpy(x), torch.from_numpy(lengths), y, torch.from_numpy(np.asarray(b, dtype=np.int64))
