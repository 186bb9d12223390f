import pytest

from ulmfit_multi.corpus.social import MARKERS, SocialNormConfig, normalize_social
from ulmfit_multi.errors import RecipeError

KEEP = SocialNormConfig(urls="keep", mentions="keep", hashtags="keep", emoji="keep", elongation=0,
                        repeated_punct=0, case="keep")


def cfg(**kw):
    return SocialNormConfig(**{**KEEP.__dict__, **kw})


def test_urls():
    text = "see https://youtu.be/x?a=1 and www.example.com now"
    assert normalize_social(text, cfg(urls="marker")) == "see xxurl and xxurl now"
    assert normalize_social(text, cfg(urls="drop")) == "see and now"
    assert normalize_social(text, cfg(urls="keep")) == text


def test_mentions():
    assert normalize_social("@raj_01 super bro", cfg(mentions="marker")) == "xxuser super bro"
    assert normalize_social("@raj_01 super bro", cfg(mentions="drop")) == "super bro"
    assert normalize_social("mail a@b.com", cfg(mentions="marker")) == "mail a@b.com"


def test_hashtags():
    text = "Ettan #maduraraja#waiting #ThalaMass"
    assert normalize_social(text, cfg(hashtags="split")) == \
        "Ettan xxhash maduraraja xxhash waiting xxhash Thala Mass"
    assert normalize_social(text, cfg(hashtags="marker")) == "Ettan xxhash xxhash xxhash"
    assert normalize_social(text, cfg(hashtags="keep")) == text


def test_emoji():
    text = "mass 😂😂 🔥 padam"
    assert normalize_social(text, cfg(emoji="marker")) == "mass xxemoji xxemoji padam"
    assert normalize_social(text, cfg(emoji="drop")) == "mass padam"
    assert normalize_social(text, cfg(emoji="keep")) == text


def test_elongation_and_punctuation():
    assert normalize_social("thalaivaaaaaa sooo", cfg(elongation=3)) == "thalaivaaa sooo"
    assert normalize_social("sooo", cfg(elongation=2)) == "soo"
    assert normalize_social("waiting.........!!!", cfg(repeated_punct=2)) == "waiting..!!"
    assert normalize_social("a...b", cfg(repeated_punct=3)) == "a...b"


def test_case_markers():
    text = "PURE DHANUSH fan Thala I"
    assert normalize_social(text, cfg(case="marker")) == "xxup pure xxup dhanush fan xxmaj thala xxmaj i"
    assert normalize_social(text, cfg(case="lower")) == "pure dhanush fan thala i"
    assert normalize_social("Vera படம்", cfg(case="marker")) == "xxmaj vera படம்"


def test_defaults_on_real_comment_and_markers_listed():
    out = normalize_social(" Ettan fansil netti poya aarenkilum undo?????    #maduraraja#waiting #")
    assert out == "xxmaj ettan fansil netti poya aarenkilum undo?? xxhash maduraraja xxhash waiting #"
    assert {"xxurl", "xxuser", "xxhash", "xxemoji", "xxup", "xxmaj"} <= set(MARKERS)


def test_bad_mode():
    with pytest.raises(RecipeError):
        normalize_social("x", cfg(urls="replace"))
