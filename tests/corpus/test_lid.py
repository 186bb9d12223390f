"""fastText language ID on real short sentences."""

from __future__ import annotations

import pytest

from ulmfit_multi.corpus import lid
from ulmfit_multi.corpus.lid import LanguageIdentifier, find_lid_model, load_lid_model
from ulmfit_multi.errors import DataError


def test_predicts_marathi_english_hindi():
    preds = LanguageIdentifier().predict([
        "महाराष्ट्र हे भारताच्या पश्चिम भागातील एक राज्य आहे.",
        "The river flows through the middle of the city.",
        "भारत की राजधानी नई दिल्ली है और यह एक बड़ा शहर है।",
    ])
    assert [lang for lang, _ in preds] == ["mr", "en", "hi"]
    assert all(0.5 < p <= 1.0 for _, p in preds)


def test_empty_and_multiline_inputs():
    ident = LanguageIdentifier()
    assert ident.predict([]) == []
    assert len(ident.predict(["line one\nline two", ""])) == 2


def test_model_is_cached():
    assert load_lid_model() is load_lid_model()


def test_missing_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(lid, "lid_model_candidates", lambda: [tmp_path / "lid.176.ftz"])
    with pytest.raises(DataError, match=r"lid\.176\.ftz not found; tried: .*lid\.176\.ftz"):
        find_lid_model()
    with pytest.raises(DataError, match="not found"):
        load_lid_model(str(tmp_path / "missing.ftz"))
