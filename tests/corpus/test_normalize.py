"""One normalization for corpus text, task text and prediction input; task documents start with EOS."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.corpus.clean import CleanConfig, TextCleaner
from ulmfit_multi.corpus.normalize import normalize_text
from ulmfit_multi.corpus.tasks import prepare_text
from ulmfit_multi.predict import Predictor
from ulmfit_multi.tokenizer import EOS_ID, Tokenizer, train_tokenizer
from ulmfit_multi.tokens import ClassifierBatches

# ऱ (U+0931), a zero-width joiner, ':' after a Devanagari letter, an ellipsis, an elongated "!!!!"
MARATHI = "शेतकऱ्यांना\u200d मदत हवी: खूप छान…  Mast!!!!"
# one sentence (the corpus is cleaned sentence by sentence): ऱ, ZWJ, ':' after Devanagari, case, elongation
SENTENCE = "शेतकऱ्यांना\u200d मदत हवी: खूप   Mast छाााान"


def test_the_normalizer_rewrites_what_the_issue_found() -> None:
    out = prepare_text(MARATHI, "mr")
    assert "\u0931" not in out and "\u0930\u093c" in out  # ऱ -> र + nukta
    assert "\u200d" not in out
    assert "हवीः" in out  # ':' after Devanagari -> visarga
    assert "!!!!" not in out and "xxmaj mast" in out  # the social-media rules
    # the legacy path (before the two were one) keeps ऱ and the ZWJ: the ablation arm
    legacy = prepare_text(MARATHI, "mr", "legacy")
    assert "\u0931" in legacy and "\u200d" in legacy


def test_corpus_task_and_prediction_text_normalize_identically(tmp_path: Path) -> None:
    corpus_side = TextCleaner(CleanConfig("mr", "mr", lid=False, min_chars=1, social=True)).clean(SENTENCE, Counter())
    task_side = prepare_text(SENTENCE, "mr")
    assert corpus_side == [task_side] == [normalize_text(SENTENCE, "mr")]
    assert "\u0931" not in task_side and "\u200d" not in task_side and "हवीः" in task_side and "xxmaj" in task_side

    tok = _tiny_tokenizer(tmp_path)
    predictor = Predictor(tok, {}, ["a", "b"], 64, lang="mr", normalization="shared", doc_boundary="eos")
    assert predictor.documents([SENTENCE]) == tok.encode_documents([task_side], boundary="eos")


def test_task_documents_start_with_eos_and_backward_ones_end_on_it(tmp_path: Path) -> None:
    tok = _tiny_tokenizer(tmp_path)
    docs = tok.encode_documents(["खूप छान चित्रपट", "वाईट", ""], boundary="eos")
    assert all(d[0] == EOS_ID for d in docs) and docs[2] == [EOS_ID]
    assert all(EOS_ID not in d[1:] for d in docs)
    for backwards in (False, True):
        batches = ClassifierBatches(docs, None, 8, shuffle=False, backwards=backwards)
        for x, lengths, _, idx in batches.batches(0):
            for row, n, i in zip(x.tolist(), lengths.tolist(), idx.tolist()):
                seq = row[:n]
                assert seq == (docs[i][::-1] if backwards else docs[i])
                assert (seq[-1] if backwards else seq[0]) == EOS_ID
    # "none" keeps the old encoding: no boundary, an empty document is [EOS]
    assert tok.encode_documents(["वाईट", ""], boundary="none") == [tok.encode(["वाईट"])[0], [EOS_ID]]
    with pytest.raises(ValueError, match="unknown document boundary"):
        tok.encode_documents(["x"], boundary="bos")


def test_concatenated_task_documents_stay_apart(tmp_path: Path) -> None:
    """LM fine-tuning concatenates the encoded documents: one EOS separates each from the next."""
    tok = _tiny_tokenizer(tmp_path)
    docs = tok.encode_documents(["खूप छान", "वाईट चित्रपट", "आज पाऊस"], boundary="eos")
    stream = np.concatenate([np.asarray(d) for d in docs])
    assert int((stream == EOS_ID).sum()) == 3 and stream[0] == EOS_ID


def _tiny_tokenizer(tmp_path: Path) -> Tokenizer:
    rng = random.Random(0)
    words = "खूप छान चित्रपट वाईट आज पाऊस शेतकऱ्यांना मदत हवी मस्त गोष्ट लोक घर".split()
    text = tmp_path / "corpus.txt"
    lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(400)]
    text.write_text("\n".join(lines + [normalize_text(MARATHI, "mr")] * 5) + "\n", encoding="utf-8")
    return Tokenizer.load(train_tokenizer([text], tmp_path / "tok", vocab_size=60, hard_vocab_limit=False).parent)
