import pytest

from ulmfit_multi.corpus.translit import romanize, to_native
from ulmfit_multi.errors import UlmfitError

SAMPLES = {
    "ta": ["வணக்கம்", "நன்றி", "தமிழ்", "காற்று", "சுயமாக சிந்திக்க தெரிஞ்சவன் தான் சூப்பர் ஹீரோ",
           "ஔவை ஃ ஸ்ரீ பொண்ணு எங்க"],
    "ml": ["നന്ദി", "മലയാളം", "ഞാൻ എന്റെ ഒന്ന്", "നിങ്ങൾ പറ്റില്ല ലാലേട്ടൻ നമസ്കാരം", "കോഴിക്കോട് കേരളം"],
    "kn": ["ಕನ್ನಡ", "ಬೆಂಗಳೂರು ಒಳ್ಳೆಯದು ಹೊಸ", "ನಮಸ್ಕಾರ ಚಿತ್ರ"],
    "mr": ["मराठी", "महाराष्ट्र ज्ञान क्षमा", "ऑफिस क़िला ज़रूर", "मी घरी जातो."],
    "hi": ["नमस्ते भारत", "हिंदी किताब प्रेम", "क्या है?", "कइ कई"],
}


@pytest.mark.parametrize("scheme", ["itrans", "iso"])
@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_round_trip(lang, scheme):
    for text in SAMPLES[lang]:
        latin = romanize(text, lang, scheme=scheme)
        assert all(not "\u0900" <= ch <= "\u0d7f" for ch in latin), latin
        assert to_native(latin, lang, scheme=scheme) == text


def test_known_romanizations():
    assert romanize("வணக்கம்", "ta", scheme="itrans") == "vaNakkam"
    assert romanize("தமிழ்", "ta", scheme="iso") == "tamiḻ"
    assert romanize("മലയാളം", "ml", scheme="itrans") == "malayALaM"
    assert romanize("ഞാൻ", "ml", scheme="iso") == "ñān"
    assert romanize("कइ", "hi", scheme="itrans") == "ka_i"  # separator keeps क+इ apart from कै


def test_casual_examples():
    assert romanize("வணக்கம்", "ta", scheme="casual") == "vanakkam"
    assert romanize("நன்றி", "ta", scheme="casual") == "nandri"
    assert romanize("பத்து எங்க", "ta", scheme="casual") == "pathu enga"
    assert romanize("നന്ദി", "ml", scheme="casual") == "nandi"
    assert romanize("ഞാൻ എന്റെ ഒന്ന്", "ml", scheme="casual") == "njan ente onnu"
    assert romanize("ಬೆಂಗಳೂರು", "kn", scheme="casual") == "bengaluru"
    assert romanize("नमस्ते भारत", "hi", scheme="casual") == "namaste bharat"


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_casual_is_plain_lowercase_ascii(lang):
    for text in SAMPLES[lang]:
        out = romanize(text, lang, scheme="casual")
        letters = [ch for ch in out if ch.isalpha()]
        assert letters and all(ch.isascii() and ch.islower() for ch in letters), out


def test_only_native_runs_change():
    text = "Last dailog புரிஞ்சா inga like podunga 👍 100%"
    out = romanize(text, "ta", scheme="casual")
    assert out == "Last dailog purinja inga like podunga 👍 100%"
    assert romanize("Tovino ഇഷ്ടം", "ta", scheme="itrans") == "Tovino ഇഷ്ടം"  # other scripts untouched
    assert to_native("👍 100%", "ta") == "👍 100%"


def test_lossy_parts_are_documented_behaviour():
    assert romanize("௧௨ ൧", "ta", scheme="itrans") == "12 ൧"  # native digits -> ASCII in the own script
    assert to_native(romanize("എൻ്റെ", "ml", scheme="itrans"), "ml") == "എന്റെ"  # chillu+virama = ന്റ
    assert to_native(romanize("അവന്‍", "ml", scheme="itrans"), "ml") == "അവൻ"  # old chillu spelling


def test_to_native_casual_best_effort():
    assert to_native("nandi", "ml", scheme="casual") == "നന്ദി"
    assert to_native("vanakkam", "ta", scheme="casual") == "வநக்கம்"  # ண vs ந cannot be told apart


def test_unknown_lang_and_scheme():
    with pytest.raises(UlmfitError):
        romanize("x", "xx")
    with pytest.raises(UlmfitError):
        romanize("x", "ta", scheme="hk")
