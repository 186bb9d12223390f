"""Encoded corpora and the batches the trainers read.

- `TokenStore`: tokens.npy (memory-mapped, uint16/uint32) + offsets.npy (n_docs+1 document boundaries)
  + meta.json, as written by `tokenizer.encode_corpus` or `write_token_store`.
- `LMStream`: the AWD-LSTM/ULMFiT layout (fastai `LMDataLoader`). The token stream, rotated by a fresh
  random offset each epoch and reversed for the backward LM, is cut into `batch_size` contiguous rows and
  read in BPTT windows of randomly varied length, so the hidden state carries over between batches.
  Rotation and reversal are index arithmetic on the memmap: no copy, memory stays flat.
- `ClassifierBatches`: documents bucketed by length (fastai sortish sampling), right-padded per batch.
  `max_len` policy: a document longer than `max_len` keeps the LAST `max_len` tokens of the sequence the
  model reads (after reversal for the backward model). The classifier reads a document in BPTT chunks
  and only its last `max_len` positions feed the pooling head, so nothing the model uses is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write, read_json, write_json
from .errors import DataError, StageError
from .tokenizer import PAD_ID, token_dtype

_SCHEDULE_BLOCK = 4096
_MAX_BPTT_DELTA = 20  # cap of a varied window over `bptt`: 4 sigma, so memory per batch is bounded


class TokenStore:
    """A memory-mapped encoded corpus (tokens.npy + offsets.npy + meta.json)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, meta: dict, directory: Path | None = None):
        self.tokens, self.offsets, self.meta, self.directory = tokens, offsets, meta, directory

    @classmethod
    def open(cls, directory: Path) -> "TokenStore":
        """Open a token store folder read-only (tokens memory-mapped).

        Raises:
            DataError: a file is missing or the offsets do not fit the tokens.
        """
        directory = Path(directory)
        for name in ("tokens.npy", "offsets.npy", "meta.json"):
            if not (directory / name).is_file():
                raise DataError(f"{directory / name}: missing (was the encode stage run?)")
        tokens = _load_npy(directory / "tokens.npy", mmap=True)
        offsets = _load_npy(directory / "offsets.npy", mmap=False)
        if tokens.ndim != 1 or offsets.ndim != 1 or len(offsets) == 0:
            raise DataError(f"{directory}: tokens.npy and offsets.npy must be non-empty 1-D arrays")
        if offsets[0] != 0 or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 0):
            raise DataError(f"{directory / 'offsets.npy'}: offsets do not describe tokens.npy "
                            f"({len(tokens)} tokens, last offset {int(offsets[-1])})")
        return cls(tokens, offsets, read_json(directory / "meta.json"), directory)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        """Token ids of document i (a view)."""
        i = range(len(self))[i]  # negative indices, and IndexError past the end
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def split(self, valid_frac: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Train/valid token views: the last `valid_frac` of the documents (contiguous, so no copy).

        `seed` is unused (the split is the corpus tail); it is kept so callers can pass one.
        """
        n_docs = len(self)
        n_valid = min(int(round(n_docs * valid_frac)), n_docs - 1) if n_docs > 1 else 0
        if valid_frac > 0 and n_docs > 1:
            n_valid = max(n_valid, 1)
        cut = int(self.offsets[n_docs - n_valid])
        return self.tokens[:cut], self.tokens[cut:]


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from e


def write_token_store(docs: Iterable[Sequence[int]], out_dir: Path, *, vocab_size: int,
                      meta: dict | None = None) -> None:
    """Write a small in-memory list of token-id documents as a TokenStore (used for task text)."""
    out_dir = Path(out_dir)
    arrays = [np.asarray(d, dtype=np.int64).reshape(-1) for d in docs]
    dtype = token_dtype(vocab_size)
    flat = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got [{flat.min()}, {flat.max()}]")
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    with atomic_write(out_dir / "tokens.npy", "wb") as f:
        np.save(f, flat.astype(dtype))
    with atomic_write(out_dir / "offsets.npy", "wb") as f:
        np.save(f, offsets)
    write_json(out_dir / "meta.json", {"vocab_size": vocab_size, "dtype": dtype.name, "tokens": int(len(flat)),
                                       "documents": len(arrays), **(meta or {})})


class LMStream:
    """ULMFiT/AWD-LSTM language-model batches read straight from a token array (e.g. a memmap)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, bptt: int, *, backwards: bool = False,
                 seed: int = 0, vary_bptt: bool = True, shuffle_offset: bool = True, rank: int = 0,
                 world_size: int = 1, doc_offsets: np.ndarray | None = None):
        """batch_size is the global batch; with world_size > 1 this stream yields only rows rank,
        rank + world_size, ... of it (data-parallel training: every rank sees the same windows).
        `doc_offsets` (n_docs + 1 boundaries into `tokens`): the documents are put in a new seeded order every
        epoch (fastai's LM loader shuffles documents; without it the stream is only rotated)."""
        if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
            raise ValueError(f"LM stream: batch size {batch_size} cannot be split over {world_size} workers "
                             f"(rank {rank})")
        self.n_tokens = len(tokens)
        # fastai layout: row r holds x positions [r*row_len, (r+1)*row_len); y reads one further
        self.row_len = (self.n_tokens - 1) // batch_size
        if self.row_len < 2:
            raise DataError(f"LM stream: {self.n_tokens} tokens is too few for batch size {batch_size}")
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        self.tokens, self.batch_size, self.bptt = tokens, batch_size, bptt
        self.backwards, self.seed, self.vary_bptt, self.shuffle_offset = backwards, seed, vary_bptt, shuffle_offset
        self.rows = np.arange(rank, batch_size, world_size)
        self._cached: tuple[int, np.ndarray] | None = None
        if doc_offsets is not None and (doc_offsets[0] != 0 or doc_offsets[-1] != self.n_tokens):
            raise ValueError(f"LM stream: document offsets span {doc_offsets[0]}..{doc_offsets[-1]}, "
                             f"not the {self.n_tokens} tokens")
        self.doc_offsets = doc_offsets
        self._shuffled: tuple[int, np.ndarray] | None = None

    def epoch_tokens(self, epoch: int) -> np.ndarray:
        """The token stream of an epoch: the documents in a seeded order when `doc_offsets` was given."""
        if self.doc_offsets is None:
            return self.tokens
        if self._shuffled is None or self._shuffled[0] != epoch:
            order = np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.doc_offsets) - 1)
            starts, ends = self.doc_offsets[:-1][order], self.doc_offsets[1:][order]
            self._shuffled = (epoch, np.concatenate([np.asarray(self.tokens[a:b]) for a, b in zip(starts, ends)]))
        return self._shuffled[1]

    def offset(self, epoch: int) -> int:
        """Rotation of the stream for an epoch (0 without `shuffle_offset`)."""
        if not self.shuffle_offset:
            return 0
        return int(np.random.default_rng([self.seed, epoch, 0]).integers(self.n_tokens))

    def seq_lens(self, epoch: int) -> np.ndarray:
        """Window lengths of an epoch; they sum to the row length.

        AWD-LSTM: base = bptt with p=0.95 else bptt/2; seq_len = int(N(base, 5)), clipped to
        [min(5, bptt), bptt + 20]; the last window takes what is left of the row.
        """
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        if self.vary_bptt:
            rng = np.random.default_rng([self.seed, epoch, 1])
            lo, hi = min(5, self.bptt), self.bptt + _MAX_BPTT_DELTA
            blocks, total = [], 0
            while total < self.row_len:
                base = np.where(rng.random(_SCHEDULE_BLOCK) < 0.95, self.bptt, self.bptt / 2)
                lens = np.clip((base + 5 * rng.standard_normal(_SCHEDULE_BLOCK)).astype(np.int64), lo, hi)
                blocks.append(lens)
                total += int(lens.sum())
            lens = np.concatenate(blocks)
        else:
            lens = np.full(-(-self.row_len // self.bptt), self.bptt, dtype=np.int64)
        ends = np.cumsum(lens)
        n = int(np.searchsorted(ends, self.row_len)) + 1  # windows needed to reach the row end
        lens = lens[:n].copy()
        lens[-1] -= int(ends[n - 1]) - self.row_len
        self._cached = (epoch, lens)
        return lens

    def num_batches(self, epoch: int) -> int:
        """Number of batches in an epoch (deterministic for the seed)."""
        return len(self.seq_lens(epoch))

    def _window(self, tokens: np.ndarray, offset: int, pos: int, length: int) -> np.ndarray:
        """(rows, length) block of the rotated (and possibly reversed) stream at row position pos."""
        idx = self.rows[:, None] * self.row_len + pos + np.arange(length)[None, :]
        idx = (idx + offset) % self.n_tokens
        if self.backwards:
            idx = self.n_tokens - 1 - idx
        return np.asarray(tokens[idx], dtype=np.int64)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) LongTensors of shape (batch_size, seq_len), y = x shifted by one; skips `start` batches."""
        lens = self.seq_lens(epoch)
        offset = self.offset(epoch)
        tokens = self.epoch_tokens(epoch)
        pos = int(lens[:start].sum())
        for n in lens[start:].tolist():
            block = torch.from_numpy(self._window(tokens, offset, pos, n + 1))  # (bs, n+1)
            pos += n
            yield block[:, :-1].contiguous(), block[:, 1:].contiguous()

    def __len__(self) -> int:
        return self.num_batches(0)


class ClassifierBatches:
    """Length-bucketed, right-padded classifier batches."""

    def __init__(self, docs: Sequence[Sequence[int]], labels: Sequence[int] | None, batch_size: int, *,
                 pad_id: int = PAD_ID, shuffle: bool = True, seed: int = 0, max_len: int | None = None,
                 backwards: bool = False, resample: Callable[[int], Sequence[int]] | None = None):
        self.docs = docs
        if labels is not None and len(labels) != len(docs):
            raise DataError(f"classifier batches: {len(docs)} documents but {len(labels)} labels")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size, self.pad_id, self.shuffle, self.seed = batch_size, pad_id, shuffle, seed
        self.max_len, self.backwards, self.resample = max_len, backwards, resample
        raw = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        if np.any(raw == 0):
            raise DataError(f"classifier batches: empty document #{int(np.argmax(raw == 0))} "
                            "(encode empty texts as a single EOS)")
        self.lengths = np.minimum(raw, max_len) if max_len else raw

    def __len__(self) -> int:
        return -(-len(self.docs) // self.batch_size)

    def order(self, epoch: int) -> list[np.ndarray]:
        """Document indices per batch: sortish when shuffling, by descending length otherwise."""
        bs, n = self.batch_size, len(self.docs)
        if not self.shuffle:
            idx = np.argsort(-self.lengths, kind="stable")
            return [idx[i:i + bs] for i in range(0, n, bs)]
        rng = np.random.default_rng([self.seed, epoch])
        idx = rng.permutation(n)
        mega = bs * 50
        idx = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")]
                              for c in (idx[i:i + mega] for i in range(0, n, mega))]) if n else idx
        batches = [idx[i:i + bs] for i in range(0, n, bs)]
        if not batches:
            return []
        longest = int(np.argmax([self.lengths[b[0]] for b in batches]))  # b[0] is its batch's longest
        rest = batches[:longest] + batches[longest + 1:]
        # largest batch first: an out-of-memory error shows on the first step, not mid-epoch
        return [batches[longest]] + [rest[i] for i in rng.permutation(len(rest))]

    def _seq(self, i: int) -> np.ndarray:
        seq = np.asarray(self.resample(i) if self.resample else self.docs[i], dtype=np.int64).reshape(-1)
        if self.backwards:
            seq = seq[::-1]
        return seq[-self.max_len:] if self.max_len else seq

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """(x LongTensor (bs, T) right-padded, lengths (bs,), y (bs,) or None, idx (bs,) original doc indices)."""
        for b in self.order(epoch):
            seqs = [self._seq(int(i)) for i in b]
            lengths = np.array([len(s) for s in seqs], dtype=np.int64)
            x = np.full((len(seqs), max(int(lengths.max()), 1)), self.pad_id, dtype=np.int64)  # (bs, T)
            for row, s in enumerate(seqs):
                x[row, :len(s)] = s
            y = None if self.labels is None else torch.from_numpy(self.labels[b])
            yield torch.from_numpy(x), torch.from_numpy(lengths), y, torch.from_numpy(b.astype(np.int64))


def check_same_tokenizer(lm_meta: dict, task_meta: dict, task_dir: Path) -> None:
    """Refuse to fine-tune an LM on task text encoded with another tokenizer (ids would mean other pieces).

    The pipeline encodes both with the one tokenizer of the run; this guards hand-assembled stores.
    """
    lm_sha, task_sha = lm_meta.get("tokenizer_sha256"), task_meta.get("tokenizer_sha256")
    if lm_meta.get("vocab_size") != task_meta.get("vocab_size") or (lm_sha and task_sha and lm_sha != task_sha):
        raise StageError(f"{task_dir}: task text was encoded with another tokenizer than the pretraining corpus "
                         f"(vocab {task_meta.get('vocab_size')} vs {lm_meta.get('vocab_size')}, sha256 "
                         f"{str(task_sha)[:12]} vs {str(lm_sha)[:12]}); ULMFiT here needs one tokenizer for both: "
                         "rerun the encode stage")
