from ulmfit_multi.corpus.script import char_script, script_mix, tag_languages, tag_tokens, token_script


def test_char_script_blocks():
    assert char_script("a") == "Latn"
    assert char_script("த") == "Taml"
    assert char_script("ന") == "Mlym"
    assert char_script("ಕ") == "Knda"
    assert char_script("म") == "Deva"
    assert char_script("்") == "Taml"  # virama is part of its script
    for ch in "7!😂 ௭।":
        assert char_script(ch) is None


def test_token_script_dominant_and_common():
    assert token_script("படம்") == "Taml"
    assert token_script("Dhanush") == "Latn"
    assert token_script("100%") == "Zyyy"
    assert token_script("😂😂") == "Zyyy"
    assert token_script("ஹீரோk") == "Taml"


def test_tag_tokens_mixed_tamil_latin_emoji_digits():
    text = "எத்தன HATTERS dislike pannunalum 😂 100% படம்,super"
    assert tag_tokens(text) == [
        ("எத்தன", "Taml"), ("HATTERS", "Latn"), ("dislike", "Latn"), ("pannunalum", "Latn"),
        ("😂", "Zyyy"), ("100%", "Zyyy"), ("படம்", "Taml"), (",", "Zyyy"), ("super", "Latn")]


def test_tag_tokens_keeps_marks_joiners_and_word_digits():
    assert tag_tokens("എന്‍റെ U1 don't") == [("എന്‍റെ", "Mlym"), ("U1", "Latn"), ("don't", "Latn")]


def test_tag_languages():
    tags = dict(tag_languages("Last dailog புரிஞ்சா inga like podunga 👍", "ta"))
    assert tags["புரிஞ்சா"] == "ta"
    assert tags["like"] == "en" and tags["Last"] == "en"
    assert tags["inga"] == "ta-Latn" and tags["podunga"] == "ta-Latn"
    assert tags["👍"] == "other"
    assert dict(tag_languages("ikka waiting", "ml", english={"ikka"}))["ikka"] == "en"


def test_script_mix_shares():
    mix = script_mix(["vera level படம்", "", "mass 100"])
    assert abs(sum(mix.values()) - 1) < 1e-9
    assert mix["Latn"] == 3 / 5 and mix["Taml"] == 1 / 5 and mix["Zyyy"] == 1 / 5
    assert script_mix([]) == {}
