"""Social-media text normalization for romanized and code-mixed comments.

URLs, @mentions, #hashtags and emoji become marker tokens (or are kept/dropped, as configured);
letters elongated for emphasis ("sooooo") are cut to `elongation` repeats; repeated punctuation to
`repeated_punct`; case is kept as information with fastai-style markers: `xxup` before an ALL-CAPS
word, `xxmaj` before a Capitalized one, then the word is lowercased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import RecipeError

URL, USER, HASH, EMOJI, UP, MAJ = "xxurl", "xxuser", "xxhash", "xxemoji", "xxup", "xxmaj"
MARKERS: list[str] = [URL, USER, HASH, EMOJI, UP, MAJ]

_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_USER_RE = re.compile(r"(?<!\w)@\w+")
_HASH_RE = re.compile(r"#(\w+)")  # "#maduraraja#waiting" is two tags
_EMOJI_RE = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200d]+")
_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD_RE = re.compile(r"\b[A-Za-z][A-Za-z']*\b")
_SPACE_RE = re.compile(r"\s+")
_MODES = ("marker", "keep", "drop")


@dataclass(frozen=True)
class SocialNormConfig:
    """How to treat the parts of a social-media comment."""

    urls: str = "marker"  # marker | keep | drop
    mentions: str = "marker"  # marker | keep | drop
    hashtags: str = "split"  # marker | keep | split ("#tag" -> "xxhash tag")
    emoji: str = "keep"  # keep | marker | drop
    elongation: int = 3  # max repeats of one letter
    repeated_punct: int = 2  # max repeats of one punctuation mark
    case: str = "marker"  # keep | lower | marker


def _apply(pattern: re.Pattern, text: str, mode: str, marker: str) -> str:
    if mode == "keep":
        return text
    return pattern.sub(f" {marker} " if mode == "marker" else " ", text)


def _split_tag(tag: str) -> str:
    """"ThalaMass" -> "Thala Mass"; underscores become spaces."""
    return _CAMEL_RE.sub(" ", tag).replace("_", " ")


def _case(match: re.Match) -> str:
    word = match.group(0)
    if len(word) > 1 and word.isupper():
        return f"{UP} {word.lower()}"
    if word[0].isupper():
        return f"{MAJ} {word.lower()}"
    return word


def normalize_social(text: str, cfg: SocialNormConfig = SocialNormConfig()) -> str:
    """Normalize one comment as `cfg` says; native-script text passes through unchanged but for spacing."""
    for name, value, allowed in (("urls", cfg.urls, _MODES), ("mentions", cfg.mentions, _MODES),
                                 ("hashtags", cfg.hashtags, ("marker", "keep", "split", "drop")),
                                 ("emoji", cfg.emoji, _MODES), ("case", cfg.case, ("keep", "lower", "marker"))):
        if value not in allowed:
            raise RecipeError(f"social normalization: {name}={value!r}; use one of {allowed}")
    text = _apply(_URL_RE, text, cfg.urls, URL)
    text = _apply(_USER_RE, text, cfg.mentions, USER)
    if cfg.hashtags == "split":
        text = _HASH_RE.sub(lambda m: f" {HASH} {_split_tag(m.group(1))} ", text)
    else:
        text = _apply(_HASH_RE, text, cfg.hashtags, HASH)
    if cfg.emoji == "marker":
        text = _EMOJI_RE.sub(lambda m: f" {EMOJI} ", text)
    elif cfg.emoji == "drop":
        text = _EMOJI_RE.sub(" ", text)
    if cfg.elongation:
        text = re.sub(rf"([^\W\d_])\1{{{cfg.elongation},}}", lambda m: m.group(1) * cfg.elongation, text)
    if cfg.repeated_punct:
        text = re.sub(rf"([!?.,;:*~\-])\1{{{cfg.repeated_punct},}}", lambda m: m.group(1) * cfg.repeated_punct, text)
    if cfg.case == "marker":
        text = _WORD_RE.sub(_case, text)
    elif cfg.case == "lower":
        text = text.lower()
    return _SPACE_RE.sub(" ", text).strip()
