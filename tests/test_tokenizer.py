"""Tokenizer training, loading and corpus encoding (ulmfit_multi.tokenizer), on text built in code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.errors import DataError
from ulmfit_multi.tokenizer import (BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, encode_corpus,
                                    token_dtype, train_tokenizer)
from ulmfit_multi.tokens import TokenStore, write_token_store

CONSONANTS = "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह"
VOWEL_SIGNS = ["", "ा", "ि", "ी", "ु", "ू", "े", "ै", "ो", "ौ", "ं"]
LATIN = "abcdefghijklmnoprstuvwxyz"


def make_words(n: int, seed: int, alphabet: str = "deva") -> list[str]:
    """`n` distinct pseudo-words of 1-4 syllables (Devanagari syllables, or Latin letter pairs)."""
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(1, 5))
        if alphabet == "deva":
            w = "".join(CONSONANTS[rng.integers(len(CONSONANTS))] + VOWEL_SIGNS[rng.integers(len(VOWEL_SIGNS))]
                        for _ in range(k))
        else:
            w = "".join(LATIN[rng.integers(len(LATIN))] + "aeiou"[rng.integers(5)] for _ in range(k))
        words.add(w)
    return sorted(words)


def make_docs(n_docs: int, seed: int, alphabet: str = "deva") -> list[list[str]]:
    """Documents (lists of sentences) of Zipf-distributed words: SentencePiece gets repeated structure."""
    rng = np.random.default_rng(seed)
    words = make_words(400, seed, alphabet)
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    docs = []
    for _ in range(n_docs):
        docs.append([" ".join(words[j] for j in rng.choice(len(words), int(rng.integers(3, 12)), p=p)) + " ।"
                     for _ in range(int(rng.integers(1, 5)))])
    return docs


def write_corpus(path: Path, docs: list[list[str]]) -> Path:
    """Corpus format: one sentence per line, documents separated by one blank line."""
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    docs = make_docs(400, seed=1)
    return write_corpus(tmp_path_factory.mktemp("corpus") / "a.txt", docs), docs


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer([corpus[0]], out, vocab_size=250, seed=0)
    return out


def test_train_writes_model_vocab_meta_with_fixed_special_ids(tok_dir: Path) -> None:
    for name in ("spm.model", "spm.vocab", "tokenizer.json"):
        assert (tok_dir / name).is_file()
    tok = Tokenizer.load(tok_dir)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert tok.vocab_size == 250 == len(tok.vocab())
    assert tok.vocab()[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    vocab_lines = (tok_dir / "spm.vocab").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in vocab_lines] == tok.vocab()
    meta = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert meta["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert meta["vocab_size"] == 250 and meta["sha256"] == tok.checksum
    assert Tokenizer.load(tok_dir / "spm.model").checksum == tok.checksum


def test_encode_decode_and_pieces(tok_dir: Path, corpus) -> None:
    tok = Tokenizer.load(tok_dir)
    texts = [s for d in corpus[1][:20] for s in d]
    ids = tok.encode(texts)
    assert [tok.decode(x) for x in ids] == texts
    assert "".join(tok.pieces(texts[0])).replace("▁", " ").strip() == texts[0]
    # control ids decode to nothing
    assert tok.decode([BOS_ID] + ids[0] + [EOS_ID, PAD_ID]) == texts[0]


def test_same_seed_gives_identical_model(corpus, tok_dir: Path, tmp_path: Path) -> None:
    train_tokenizer([corpus[0]], tmp_path, vocab_size=250, seed=0)
    a, b = Tokenizer.load(tok_dir), Tokenizer.load(tmp_path)
    assert a.checksum == b.checksum
    texts = [s for d in corpus[1] for s in d]
    assert a.encode(texts) == b.encode(texts)


def test_sampling_seed_changes_the_sample(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "a.txt", make_docs(400, seed=2))
    metas = []
    for seed in (0, 0, 1):
        out = tmp_path / f"tok{len(metas)}"
        train_tokenizer([path], out, vocab_size=200, seed=seed, max_sentences=300, hard_vocab_limit=False)
        metas.append(out / "spm.model")
    assert metas[0].read_bytes() == metas[1].read_bytes()
    assert metas[0].read_bytes() != metas[2].read_bytes()


def test_weights_set_sample_shares(tmp_path: Path) -> None:
    deva = write_corpus(tmp_path / "deva.txt", make_docs(300, seed=3))
    latin = write_corpus(tmp_path / "latin.txt", make_docs(300, seed=4, alphabet="latin"))

    def latin_pieces(weights: tuple[float, float], out: Path) -> int:
        train_tokenizer([(deva, weights[0]), (latin, weights[1])], out, vocab_size=400, max_sentences=600,
                        hard_vocab_limit=False)
        meta = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
        sampled = [inp["sampled"] for inp in meta["inputs"]]
        assert sum(sampled) == 600
        assert sampled[0] / 600 == pytest.approx(weights[0] / sum(weights), abs=0.01)
        vocab = Tokenizer.load(out).vocab()[4:]
        return sum(1 for p in vocab if any(c in LATIN for c in p))

    # 9:1 vs 1:9: the heavily weighted source gets more of the vocabulary
    assert latin_pieces((9, 1), tmp_path / "a") < latin_pieces((1, 9), tmp_path / "b")


def test_weight_oversamples_small_source(tmp_path: Path) -> None:
    small = write_corpus(tmp_path / "small.txt", make_docs(10, seed=5))
    big = write_corpus(tmp_path / "big.txt", make_docs(300, seed=6))
    n_small = sum(1 for line in small.read_text(encoding="utf-8").splitlines() if line.strip())
    train_tokenizer([(small, 1.0), (big, 1.0)], tmp_path / "t", vocab_size=200, max_sentences=400,
                    hard_vocab_limit=False)
    meta = json.loads((tmp_path / "t" / "tokenizer.json").read_text(encoding="utf-8"))
    assert meta["inputs"][0]["sampled"] == 200 > n_small == meta["inputs"][0]["lines"]


def test_bad_inputs_raise_data_error(corpus, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        train_tokenizer([tmp_path / "missing.txt"], tmp_path, vocab_size=100)
    with pytest.raises(DataError, match="weight"):
        train_tokenizer([(corpus[0], 0.0)], tmp_path, vocab_size=100)
    with pytest.raises(DataError, match="all paths weighted"):
        train_tokenizer([corpus[0], (corpus[0], 1.0)], tmp_path, vocab_size=100)
    with pytest.raises(DataError, match="vocab_size"):
        train_tokenizer([corpus[0]], tmp_path, vocab_size=50_000)


def test_subword_sampling_varies_segmentation_but_not_text(tok_dir: Path, corpus) -> None:
    tok = Tokenizer.load(tok_dir)
    texts = [s for d in corpus[1][:30] for s in d]
    plain = tok.encode(texts)
    draws = [tok.encode(texts, sample=True, alpha=0.5) for _ in range(3)]
    for draw in draws:
        assert [tok.decode(x) for x in draw] == texts
    assert any(draw != plain for draw in draws)
    assert draws[0] != draws[1] or draws[1] != draws[2]


# ---------------------------------------------------------------- encode_corpus


@pytest.fixture(scope="module")
def encoded(tok_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two shards (the second without a trailing newline and with extra blank lines), small chunks."""
    root = tmp_path_factory.mktemp("enc")
    docs1, docs2 = make_docs(60, seed=7), make_docs(40, seed=8)
    s1 = write_corpus(root / "s1.txt", docs1)
    s2 = root / "s2.txt"
    s2.write_text("\n\n\n" + "\n\n\n".join("\n".join(d) for d in docs2), encoding="utf-8")
    out = root / "w1"
    meta = encode_corpus(tok_dir, [s1, s2], out, workers=1, progress=False, chunk_bytes=2_000)
    return out, meta, docs1 + docs2, [s1, s2]


def test_encode_corpus_round_trip_and_offsets(encoded, tok_dir: Path) -> None:
    out, meta, docs, _ = encoded
    tok = Tokenizer.load(tok_dir)
    store = TokenStore.open(out)
    assert len(store) == len(docs) == meta["documents"]
    assert store.tokens.dtype == np.uint16 and meta["dtype"] == "uint16"
    assert store.offsets[0] == 0 and store.offsets[-1] == len(store.tokens) == meta["tokens"]
    for i, sentences in enumerate(docs):
        doc = np.asarray(store.doc(i))
        assert doc[-1] == EOS_ID
        # each sentence ends with EOS: split on EOS, decode each piece
        cuts = np.flatnonzero(doc == EOS_ID)
        assert len(cuts) == len(sentences)
        parts = np.split(doc, cuts + 1)[:-1]
        assert [tok.decode(p[:-1].tolist()) for p in parts] == sentences
        # offsets equal document boundaries: the document's tokens are exactly its sentences' encodings
        assert doc.tolist() == [t for ids in tok.encode(sentences) for t in ids + [EOS_ID]]


def test_encode_corpus_meta(encoded) -> None:
    out, meta, docs, _ = encoded
    assert json.loads((out / "meta.json").read_text(encoding="utf-8")) == meta
    assert meta["sentences"] == sum(len(d) for d in docs)
    assert meta["words"] == sum(len(s.split()) for d in docs for s in d)
    assert meta["unk_rate"] == 0.0  # every character of the corpus is in the vocabulary
    assert meta["tokens_per_word"] == pytest.approx((meta["tokens"] - meta["sentences"]) / meta["words"],
                                                    abs=1e-3)
    assert meta["eos_id"] == EOS_ID and meta["vocab_size"] == 250


def test_unknown_rate_counts_unseen_characters(tok_dir: Path, tmp_path: Path) -> None:
    # Latin letters never occur in the training text: every one encodes to UNK
    path = tmp_path / "x.txt"
    path.write_text("क xyz क\n\nक\n", encoding="utf-8")
    meta = encode_corpus(tok_dir, [path], tmp_path / "o", workers=1, progress=False)
    tokens = np.load(tmp_path / "o" / "tokens.npy")
    n_unk = int(np.count_nonzero(tokens == UNK_ID))
    assert n_unk >= 1
    assert meta["unk_rate"] == pytest.approx(n_unk / (meta["tokens"] - meta["sentences"]))


def test_workers_give_identical_files(encoded, tok_dir: Path, tmp_path: Path) -> None:
    out1, _, _, shards = encoded
    encode_corpus(tok_dir, shards, tmp_path, workers=2, progress=False, chunk_bytes=2_000)
    for name in ("tokens.npy", "offsets.npy"):
        assert (tmp_path / name).read_bytes() == (out1 / name).read_bytes()


def test_chunk_size_does_not_change_output(encoded, tok_dir: Path, tmp_path: Path) -> None:
    out1, _, _, shards = encoded
    encode_corpus(tok_dir, shards, tmp_path, workers=1, progress=False, chunk_bytes=1 << 20)
    for name in ("tokens.npy", "offsets.npy"):
        assert (tmp_path / name).read_bytes() == (out1 / name).read_bytes()


def test_long_document_cut_inside_a_chunk_keeps_its_boundary(tok_dir: Path, tmp_path: Path) -> None:
    # tiny chunk_bytes forces cuts inside documents (the 4x rule); boundaries must survive
    docs = make_docs(30, seed=9)
    path = write_corpus(tmp_path / "c.txt", docs)
    ref = encode_corpus(tok_dir, [path], tmp_path / "ref", workers=1, progress=False)
    small = encode_corpus(tok_dir, [path], tmp_path / "small", workers=1, progress=False, chunk_bytes=10)
    assert small["documents"] == ref["documents"] == len(docs)
    for name in ("tokens.npy", "offsets.npy"):
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_encode_errors(tok_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        encode_corpus(tok_dir, [tmp_path / "missing.txt"], tmp_path / "o", workers=1, progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text"):
        encode_corpus(tok_dir, [empty], tmp_path / "o", workers=1, progress=False)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="bad.txt"):
        encode_corpus(tok_dir, [bad], tmp_path / "o", workers=1, progress=False)


def test_dtype_by_vocab_size(tmp_path: Path) -> None:
    assert token_dtype(300) == np.uint16 and token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32
    write_token_store([[1, 2, 3], [65_535]], tmp_path / "small", vocab_size=65_536)
    assert TokenStore.open(tmp_path / "small").tokens.dtype == np.uint16
    write_token_store([[1, 70_000, 3], [65_536]], tmp_path / "big", vocab_size=70_001)
    store = TokenStore.open(tmp_path / "big")
    assert store.tokens.dtype == np.uint32 and store.meta["dtype"] == "uint32"
    assert store.doc(0).tolist() == [1, 70_000, 3] and store.doc(1).tolist() == [65_536]


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_marathi_text_trains_encodes_and_streams(mirror_dir: Path, tmp_path: Path) -> None:
    from ulmfit_multi.tokens import LMStream

    files = sorted((mirror_dir / "mr" / "text" / "wikisource" / "datasets" / "dnyaneshwari").glob("*.txt"))[:4]
    if not files:
        pytest.skip("mr/text/wikisource is not in the mirror")
    model = train_tokenizer(files, tmp_path / "tok", vocab_size=2000, max_sentences=20_000)
    meta = encode_corpus(model, files, tmp_path / "enc", workers=2, progress=False)
    assert meta["unk_rate"] < 0.01 and 1.0 < meta["tokens_per_word"] < 4.0
    store, tok = TokenStore.open(tmp_path / "enc"), Tokenizer.load(model)
    first: list[str] = []
    for line in files[0].read_text(encoding="utf-8").splitlines():
        if line.strip():
            first.append(line)
        elif first:
            break
    assert store.doc(0).tolist() == [t for ids in tok.encode(first) for t in ids + [EOS_ID]]
    x, y = next(LMStream(store.tokens, 8, 70).batches(0))
    assert x.shape == y.shape and torch_equal_shift(x, y)


def torch_equal_shift(x, y) -> bool:
    """y is x shifted by one along time."""
    return bool((y[:, :-1] == x[:, 1:]).all())
