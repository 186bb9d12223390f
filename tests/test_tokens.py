"""TokenStore, LMStream and ClassifierBatches (ulmfit_multi.tokens): property tests on small arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ulmfit_multi.errors import DataError
from ulmfit_multi.tokens import ClassifierBatches, LMStream, TokenStore, write_token_store


def collect(stream: LMStream, epoch: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a whole epoch, concatenated along time: (batch_size, total_len)."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in stream.batches(epoch, start)])
    return np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)


# ---------------------------------------------------------------- TokenStore


def test_token_store_docs_and_split(tmp_path: Path) -> None:
    docs = [list(range(i, i + 3 + i % 4)) for i in range(10)]
    write_token_store(docs, tmp_path, vocab_size=100, meta={"lang": "mr"})
    store = TokenStore.open(tmp_path)
    assert len(store) == 10 and store.meta["lang"] == "mr" and store.meta["documents"] == 10
    assert isinstance(store.tokens, np.memmap)
    assert [store.doc(i).tolist() for i in range(10)] == docs
    assert store.doc(-1).tolist() == docs[-1]
    with pytest.raises(IndexError):
        store.doc(10)
    train, valid = store.split(0.2)
    flat = [t for d in docs for t in d]
    # valid is the last 2 documents, train the rest, no token lost or duplicated
    assert valid.tolist() == [t for d in docs[-2:] for t in d]
    assert train.tolist() + valid.tolist() == flat
    assert store.split(0.2, seed=5)[1].tolist() == valid.tolist()
    assert len(store.split(0.0)[1]) == 0
    assert len(store.split(0.01)[1]) == len(docs[-1])  # a non-zero fraction keeps at least one document


def test_token_store_missing_or_inconsistent(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        TokenStore.open(tmp_path)
    write_token_store([[1, 2], [3]], tmp_path, vocab_size=10)
    np.save(tmp_path / "offsets.npy", np.array([0, 2, 5]))
    with pytest.raises(DataError, match="offsets"):
        TokenStore.open(tmp_path)


def test_write_token_store_rejects_out_of_range_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_token_store([[1, 10]], tmp_path, vocab_size=10)


# ---------------------------------------------------------------- LMStream

N, BS, BPTT = 1_003, 4, 20
TOKENS = np.arange(N, dtype=np.int64)  # token value == stream position


def test_lm_y_is_x_shifted_and_rows_contiguous() -> None:
    stream = LMStream(TOKENS, BS, BPTT, shuffle_offset=False, seed=1)
    row_len = (N - 1) // BS
    for x, y in stream.batches(0):
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape and x.shape[0] == BS
        assert torch.equal(y, x + 1)
    x, y = collect(stream, 0)
    # each row reads one contiguous stretch, continuing across batches
    assert x.shape == (BS, row_len)
    assert (x == np.arange(BS)[:, None] * row_len + np.arange(row_len)[None, :]).all()


def test_lm_no_token_lost_except_tail() -> None:
    stream = LMStream(TOKENS, BS, BPTT, shuffle_offset=False, seed=2)
    x, y = collect(stream, 0)
    row_len = (N - 1) // BS
    # every position is read exactly once as input and once as target; only the tail (< batch_size) is left
    assert np.array_equal(np.sort(x.ravel()), np.arange(BS * row_len))
    assert np.array_equal(np.sort(y.ravel()), np.arange(1, BS * row_len + 1))
    assert N - 1 - BS * row_len < BS
    assert int(np.sum(stream.seq_lens(0))) == row_len == x.shape[1]


def test_lm_random_offset_rotates_stream_per_epoch() -> None:
    stream = LMStream(TOKENS, BS, BPTT, seed=3)
    x0, y0 = collect(stream, 0)
    x1, _ = collect(stream, 1)
    assert not np.array_equal(x0, x1)
    # a rotation of the (cyclic) stream: consecutive positions modulo N, and y follows x
    assert ((np.diff(x0, axis=1) % N) == 1).all()
    assert ((y0 - x0) % N == 1).all()
    assert len(np.unique(x0)) == x0.size  # no position read twice
    assert x0[0, 0] == stream.offset(0) and stream.offset(0) != stream.offset(1)
    assert np.array_equal(collect(LMStream(TOKENS, BS, BPTT, seed=3), 0)[0], x0)


def test_lm_backward_stream_is_reversed_forward_stream() -> None:
    fwd = LMStream(TOKENS[::-1].copy(), BS, BPTT, shuffle_offset=False, seed=4)
    bwd = LMStream(TOKENS, BS, BPTT, shuffle_offset=False, seed=4, backwards=True)
    for (xf, yf), (xb, yb) in zip(fwd.batches(0), bwd.batches(0), strict=True):
        assert torch.equal(xf, xb) and torch.equal(yf, yb)
    xb, yb = collect(bwd, 0)
    assert torch.equal(torch.from_numpy(yb), torch.from_numpy(xb) - 1)  # reads the corpus right to left


def test_lm_variable_bptt_deterministic_per_seed_epoch() -> None:
    tokens = np.arange(200_001, dtype=np.int64)
    a, b = LMStream(tokens, 8, 70, seed=5), LMStream(tokens, 8, 70, seed=5)
    lens = a.seq_lens(0)
    assert np.array_equal(lens, b.seq_lens(0))
    assert not np.array_equal(lens[:50], a.seq_lens(1)[:50])
    assert not np.array_equal(lens[:50], LMStream(tokens, 8, 70, seed=6).seq_lens(0)[:50])
    assert lens.sum() == (200_000 // 8) and a.num_batches(0) == len(lens)
    body = lens[:-1]
    assert abs(body.mean() - 70) < 0.05 * 70  # 0.95*70 + 0.05*35, truncated: about 67.7
    assert body.min() >= 5 and body.max() <= 90 and len(np.unique(body)) > 10
    assert (body < 50).any()  # the bptt/2 branch is taken
    assert [x.shape[1] for x, _ in a.batches(0)] == lens.tolist()
    fixed = LMStream(tokens, 8, 70, seed=5, vary_bptt=False).seq_lens(0)
    assert (fixed[:-1] == 70).all() and fixed.sum() == 200_000 // 8


def test_lm_start_skips_batches() -> None:
    stream = LMStream(TOKENS, BS, BPTT, seed=7)
    full = list(stream.batches(2))
    for start in (0, 1, 5, len(full)):
        resumed = list(LMStream(TOKENS, BS, BPTT, seed=7).batches(2, start=start))
        assert len(resumed) == len(full) - start
        for (xa, ya), (xb, yb) in zip(full[start:], resumed, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_lm_reads_memmap_and_small_dtypes(tmp_path: Path) -> None:
    write_token_store([list(range(500)), list(range(500, 1003))], tmp_path, vocab_size=2_000)
    store = TokenStore.open(tmp_path)
    assert store.tokens.dtype == np.uint16
    x, y = collect(LMStream(store.tokens, BS, BPTT, shuffle_offset=False), 0)
    assert np.array_equal(x, collect(LMStream(TOKENS, BS, BPTT, shuffle_offset=False), 0)[0])


def test_lm_too_few_tokens() -> None:
    with pytest.raises(DataError, match="too few"):
        LMStream(np.arange(8), 4, 20)


# ---------------------------------------------------------------- ClassifierBatches


def make_docs(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    # each doc's tokens encode its index, so a batch row can be traced back to its source document
    return [[1000 * i + k + 4 for k in range(int(rng.integers(1, 200)))] for i in range(n)]


def test_classifier_every_doc_once_padding_and_idx() -> None:
    docs = make_docs(237, seed=0)
    labels = [i % 3 for i in range(237)]
    cb = ClassifierBatches(docs, labels, 16, seed=0)
    seen = []
    batches = list(cb.batches(0))
    assert len(batches) == len(cb) == 15
    for x, lengths, y, idx in batches:
        assert x.dtype == torch.int64 and x.shape == (len(idx), int(lengths.max()))
        for row, i in enumerate(idx.tolist()):
            n = int(lengths[row])
            assert n == len(docs[i])
            assert x[row, :n].tolist() == docs[i]  # right padding: tokens first
            assert (x[row, n:] == 0).all()
            assert int(y[row]) == labels[i]
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(237))
    # the largest batch comes first
    assert int(batches[0][1].max()) == max(len(d) for d in docs)


def test_classifier_sortish_groups_similar_lengths() -> None:
    docs = make_docs(800, seed=1)
    cb = ClassifierBatches(docs, None, 16, seed=1)
    lengths = np.array([len(d) for d in docs])
    spread = [float(lens.max() - lens.min()) for _, lens, _, _ in cb.batches(0)]
    rng = np.random.default_rng(0)
    random_spread = [float(np.ptp(lengths[rng.permutation(800)[:16]])) for _ in range(50)]
    assert np.mean(spread) < 0.25 * np.mean(random_spread)
    padded = sum(x.numel() for x, _, _, _ in cb.batches(0))
    assert padded < 1.2 * lengths.sum()


def test_classifier_determinism_and_epochs() -> None:
    docs = make_docs(300, seed=2)
    order = lambda seed, epoch: [b.tolist() for b in ClassifierBatches(docs, None, 8, seed=seed).order(epoch)]
    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    # no shuffle: by descending length
    plain = ClassifierBatches(docs, None, 8, shuffle=False)
    lens = [len(docs[i]) for b in plain.order(0) for i in b]
    assert lens == sorted(lens, reverse=True)


def test_classifier_max_len_keeps_tail_and_backwards_reverses() -> None:
    docs = make_docs(40, seed=3)
    by_idx = lambda cb: {int(i): x[r, :int(n)].tolist()
                         for x, lens, _, idx in cb.batches(0) for r, (i, n) in enumerate(zip(idx, lens))}
    trimmed = by_idx(ClassifierBatches(docs, None, 8, max_len=50))
    assert all(trimmed[i] == docs[i][-50:] for i in range(40))
    assert any(len(d) > 50 for d in docs)
    backward = by_idx(ClassifierBatches(docs, None, 8, backwards=True))
    assert all(backward[i] == docs[i][::-1] for i in range(40))
    # backwards + max_len: the last max_len tokens of what the backward model reads
    both = by_idx(ClassifierBatches(docs, None, 8, backwards=True, max_len=50))
    assert all(both[i] == docs[i][::-1][-50:] for i in range(40))


def test_classifier_resample_is_used() -> None:
    docs = make_docs(20, seed=4)
    calls = []

    def resample(i: int) -> list[int]:
        calls.append(i)
        return docs[i] + [7]

    cb = ClassifierBatches(docs, None, 4, resample=resample)
    for x, lens, _, idx in cb.batches(0):
        for r, i in enumerate(idx.tolist()):
            assert x[r, :int(lens[r])].tolist() == docs[i] + [7]
    assert sorted(calls) == list(range(20))


def test_classifier_errors() -> None:
    with pytest.raises(DataError, match="empty document #1"):
        ClassifierBatches([[5], [], [6]], None, 2)
    with pytest.raises(DataError, match="labels"):
        ClassifierBatches([[5], [6]], [0], 2)
    assert list(ClassifierBatches([], None, 4).batches(0)) == []


def test_lm_stream_shuffles_documents_per_epoch_and_keeps_every_token() -> None:
    docs = [np.arange(100 * d, 100 * d + 7 + d) for d in range(30)]  # documents of distinct token ranges
    tokens = np.concatenate(docs)
    offsets = np.cumsum([0] + [len(d) for d in docs])
    stream = LMStream(tokens, 4, 8, seed=3, doc_offsets=offsets)
    e0, e1 = stream.epoch_tokens(0), stream.epoch_tokens(1)
    assert sorted(e0.tolist()) == sorted(tokens.tolist()) == sorted(e1.tolist())
    assert not np.array_equal(e0, tokens) and not np.array_equal(e0, e1)
    assert np.array_equal(e0, LMStream(tokens, 4, 8, seed=3, doc_offsets=offsets).epoch_tokens(0))  # seeded
    # documents stay whole: each starts where one of the originals starts
    starts = {int(d[0]) for d in docs}
    pos, seen = 0, []
    while pos < len(e0):
        d = int(e0[pos]) // 100
        assert int(e0[pos]) in starts and np.array_equal(e0[pos:pos + len(docs[d])], docs[d])
        seen.append(d)
        pos += len(docs[d])
    assert sorted(seen) == list(range(30))
    x, y = next(iter(stream.batches(0)))
    assert x.shape[0] == 4 and np.array_equal(x[:, 1:].numpy(), y[:, :-1].numpy())
    with pytest.raises(ValueError, match="document offsets"):
        LMStream(tokens, 4, 8, doc_offsets=offsets[:-1])
    assert np.array_equal(LMStream(tokens, 4, 8).epoch_tokens(5), tokens)  # without offsets: the stream as is
