"""Language specs under langs/."""

from __future__ import annotations

import pytest

import ulmfit_multi.langs as langs_mod
from ulmfit_multi.errors import RecipeError
from ulmfit_multi.langs import LangSpec, all_langs, lang_files, load_lang

REQUIRED = ("mr", "hi", "ta", "ml", "kn", "en")


@pytest.mark.parametrize("path", lang_files(), ids=lambda p: p.name)
def test_every_lang_file_loads(path):
    spec = load_lang(path.stem)
    assert isinstance(spec, LangSpec)
    assert spec.code == path.stem
    assert spec.name and spec.scripts
    assert spec.task_text in ("native", "romanized", "mixed")
    assert spec.model_type in ("unigram", "bpe")
    assert spec.vocab_size > 0 and 0 < spec.character_coverage <= 1
    assert spec.lid_code  # defaults to the code


def test_required_languages_exist():
    codes = {s.code for s in all_langs()}
    assert set(REQUIRED) <= codes


def test_unknown_code_lists_known_codes():
    with pytest.raises(RecipeError) as e:
        load_lang("xx", where="recipes/foo.toml: recipe.langs")
    msg = str(e.value)
    assert msg.startswith("recipes/foo.toml: recipe.langs: ")
    assert "'xx'" in msg
    for code in REQUIRED:
        assert code in msg


def test_unknown_code_close_to_a_known_one_still_lists_known():
    with pytest.raises(RecipeError) as e:
        load_lang("mar")
    msg = str(e.value)
    assert "did you mean 'mr'" in msg
    for code in REQUIRED:
        assert code in msg


@pytest.fixture
def langs_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(langs_mod, "LANGS_DIR", tmp_path)
    return tmp_path


def test_file_and_code_mismatch(langs_dir):
    (langs_dir / "zz.toml").write_text('code = "yy"\nname = "Zed"\nscripts = ["Latn"]\n', encoding="utf-8")
    with pytest.raises(RecipeError) as e:
        load_lang("zz")
    msg = str(e.value)
    assert str(langs_dir / "zz.toml") in msg and "'yy'" in msg and "zz.toml" in msg


def test_bad_task_text_and_unknown_key_name_the_file(langs_dir):
    (langs_dir / "zz.toml").write_text('code = "zz"\ntask_text = "latin"\n', encoding="utf-8")
    with pytest.raises(RecipeError, match=r"zz\.toml: 'task_text'"):
        load_lang("zz")
    (langs_dir / "zz.toml").write_text('code = "zz"\nvocab = 10\n', encoding="utf-8")
    with pytest.raises(RecipeError, match=r"zz\.toml: unknown key 'vocab'.*vocab_size"):
        load_lang("zz")


def test_lid_code_defaults_to_code(langs_dir):
    (langs_dir / "zz.toml").write_text('code = "zz"\n', encoding="utf-8")
    assert load_lang("zz").lid_code == "zz"
