"""Normalization, sentence splitting, length and language filters, dedupe."""

from __future__ import annotations

from collections import Counter

from ulmfit_multi.corpus.clean import CleanConfig, Deduper, TextCleaner, simple_sentence_split

MR = "महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे. मुंबई ही महाराष्ट्राची राजधानी आहे."


def test_nfc_and_whitespace():
    cleaner = TextCleaner(CleanConfig("mr", None, lid=False, min_chars=1))
    composed = "\u00e9"  # é
    assert cleaner.normalize("e\u0301  a\u200bb\tc") == f"{composed} ab c"


def test_indic_normalizer_applied():
    plain = TextCleaner(CleanConfig("mr", None, lid=False, min_chars=1))
    norm = TextCleaner(CleanConfig("mr", "mr", lid=False, min_chars=1))
    text = "पुणे।"  # indic-nlp maps the danda variants/punctuation consistently
    assert norm.normalize(text) == norm.normalize(norm.normalize(text))
    assert plain.normalize(MR) == MR


def test_sentence_split_marathi_and_english():
    mr = TextCleaner(CleanConfig("mr", "mr", lid=False, min_chars=1))
    assert mr.split_sentences(MR + "\nदुसरा परिच्छेद!") == [
        "महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे.", "मुंबई ही महाराष्ट्राची राजधानी आहे.",
        "दुसरा परिच्छेद!"]
    assert simple_sentence_split("One here. Two there! 3 more? end") == ["One here.", "Two there!", "3 more? end"]


def test_filters_count_what_they_drop():
    cleaner = TextCleaner(CleanConfig("mr", "mr", lid=True, lid_threshold=0.5, min_chars=20))
    dropped: Counter = Counter()
    text = MR + " This sentence is clearly written in English. लहान."
    out = cleaner.clean(text, dropped)
    assert out == ["महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे.", "मुंबई ही महाराष्ट्राची राजधानी आहे."]
    assert dropped["lid"] == 1 and dropped["lid:en"] == 1


def test_min_chars_counted():
    cleaner = TextCleaner(CleanConfig("mr", None, lid=False, min_chars=20))
    dropped: Counter = Counter()
    assert cleaner.clean("लहान.\n" + MR, dropped)[0].startswith("महाराष्ट्र")
    assert dropped["min_chars"] == 1


def test_deduper():
    d = Deduper()
    assert [d.is_new(s) for s in ["a", "b", "a"]] == [True, True, False]
