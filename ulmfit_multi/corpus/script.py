"""Per-token script detection by Unicode block, and a simple token-level language tag.

Scripts use ISO 15924 codes. `Zyyy` ("common") is what a token made only of digits, punctuation,
symbols or emoji gets. Token tags for code-mixed text (`tag_languages`) are deliberately simple:

- a token in a native Indic script -> the expected language (`"ta"`),
- a Latin token -> `"en"` if it is in a small built-in English wordlist (or the one passed in), or
  looks English by suffix (-ing, -tion, -ment, -ness, -able, -ly with 5+ letters); otherwise it is taken
  as romanized text of the expected language (`"ta-Latn"`),
- anything else (digits, punctuation, emoji, other scripts) -> `"other"`.

Usage: `ulmfit-multi lid "Vera level 👍 படம்" --lang ta`
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Collection, Iterable

# Inclusive code point ranges per ISO 15924 script.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "Latn": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F), (0x1E00, 0x1EFF)),
    "Deva": ((0x0900, 0x0963), (0x0966, 0x097F), (0xA8E0, 0xA8FF), (0x1CD0, 0x1CFF)),
    "Beng": ((0x0980, 0x09FF),),
    "Guru": ((0x0A00, 0x0A7F),),
    "Gujr": ((0x0A80, 0x0AFF),),
    "Orya": ((0x0B00, 0x0B7F),),
    "Taml": ((0x0B80, 0x0BFF), (0x11FC0, 0x11FFF)),
    "Telu": ((0x0C00, 0x0C7F),),
    "Knda": ((0x0C80, 0x0CFF),),
    "Mlym": ((0x0D00, 0x0D7F),),
    "Sinh": ((0x0D80, 0x0DFF),),
    "Arab": ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "Cyrl": ((0x0400, 0x04FF),),
    "Grek": ((0x0370, 0x03FF),),
}
COMMON = "Zyyy"
# Script of each language's native writing (for `tag_languages`).
LANG_SCRIPTS: dict[str, str] = {
    "hi": "Deva", "mr": "Deva", "ne": "Deva", "sa": "Deva", "bn": "Beng", "as": "Beng", "pa": "Guru",
    "gu": "Gujr", "or": "Orya", "ta": "Taml", "te": "Telu", "kn": "Knda", "ml": "Mlym", "si": "Sinh",
    "ur": "Arab",
}
_INDIC = {"Deva", "Beng", "Guru", "Gujr", "Orya", "Taml", "Telu", "Knda", "Mlym", "Sinh"}
_JOINERS = {"\u200c", "\u200d"}
_TABLE: list[tuple[int, int, str]] = sorted((lo, hi, s) for s, rs in SCRIPTS.items() for lo, hi in rs)

ENGLISH_WORDS: frozenset[str] = frozenset("""
a about after again all also always am an and any are as at away bad be because been before best
better big but by can come could day did do does done dont don't down each even ever every first
for from get give go good got great had has have he her here him his how i if im i'm in into is it
its it's just know last let life like little long look love made make man many me more most much my
never new next no not now of off oh ok okay old on once one only or other our out over people please
really right said same say see she should show so some still such sure take than thank thanks that
the their them then there these they thing think this those time to too two up us very want was way
we well were what when where which who why will with without work would yes yet you your
movie film song songs music trailer teaser video view views like likes dislike dislikes comment
comments fan fans star super superb hit mass level waiting wait release day box office awesome
nice cute beautiful best worst boring bgm hero heroine director actor acting scene scenes story
watch watched watching youtube channel subscribe share support all the best congrats congratulations
happy birthday sir bro brother sister anna god love lovely fantastic amazing excellent semma
""".split()) - {"semma", "anna"}  # Tamil words that look English are taken out again
_EN_SUFFIXES = ("ing", "tion", "ment", "ness", "able", "ly")


def char_script(ch: str) -> str | None:
    """ISO 15924 code of one character's script, or None (digits, punctuation, emoji, joiners, unlisted)."""
    cp = ord(ch)
    lo, hi_ = 0, len(_TABLE)
    while lo < hi_:
        mid = (lo + hi_) // 2
        if _TABLE[mid][1] < cp:
            lo = mid + 1
        else:
            hi_ = mid
    if lo < len(_TABLE) and _TABLE[lo][0] <= cp <= _TABLE[lo][1]:
        script = _TABLE[lo][2]
        # native digits count as script-neutral, like ASCII digits
        if script in _INDIC and unicodedata.category(ch) == "Nd":
            return None
        return script
    return None


def token_script(token: str) -> str:
    """Dominant script of a token (most characters); `Zyyy` for digits, punctuation and emoji."""
    counts = Counter(s for s in map(char_script, token) if s)
    return counts.most_common(1)[0][0] if counts else COMMON


def _is_mark(ch: str) -> bool:
    return ch in _JOINERS or unicodedata.category(ch)[0] == "M"


def tokenize(text: str) -> list[str]:
    """Split on whitespace, then at script changes; marks and joiners stay with their letter."""
    tokens: list[str] = []
    for chunk in text.split():
        cur, cur_key = "", None
        for i, ch in enumerate(chunk):
            key = char_script(ch) or COMMON
            if cur and _is_mark(ch):
                key = cur_key
            elif cur and ch.isdigit() and cur_key not in (None, COMMON):
                key = cur_key  # "U1", "2k19": digits stay with the word they follow
            elif cur and ch == "'" and cur_key == "Latn" and chunk[i + 1: i + 2].isalpha():
                key = cur_key  # "don't"
            if cur and key != cur_key:
                tokens.append(cur)
                cur = ""
            cur += ch
            cur_key = key
        if cur:
            tokens.append(cur)
    return tokens


def tag_tokens(text: str) -> list[tuple[str, str]]:
    """(token, script) for each token of `text`."""
    return [(tok, token_script(tok)) for tok in tokenize(text)]


def _looks_english(token: str, english: Collection[str]) -> bool:
    low = token.lower()
    if low in english:
        return True
    return len(low) >= 5 and low.isascii() and low.endswith(_EN_SUFFIXES)


def tag_languages(text: str, lang: str, english: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(token, tag): native tokens -> `lang`, Latin -> "en" or `lang`+"-Latn" (romanized), else "other"."""
    native = LANG_SCRIPTS.get(lang)
    words = ENGLISH_WORDS if english is None else english
    out = []
    for tok, script in tag_tokens(text):
        if script == native:
            tag = lang
        elif script == "Latn":
            tag = "en" if _looks_english(tok, words) else f"{lang}-Latn"
        else:
            tag = "other"
        out.append((tok, tag))
    return out


def script_mix(texts: Iterable[str]) -> dict[str, float]:
    """Share of tokens per script over `texts` (sums to 1; empty input -> {})."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(s for _, s in tag_tokens(text))
    total = sum(counts.values())
    return {s: n / total for s, n in counts.most_common()} if total else {}
