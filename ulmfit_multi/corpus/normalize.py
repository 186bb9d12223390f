"""The one text normalization: every text the tokenizer, the LMs, the classifiers and the baselines see.

    normalize_text(text, normalizer_lang)   # task text, prediction input, baselines
    TextCleaner(...).clean(document)        # corpus text: the same steps, sentence by sentence

Steps, in order:
1. Unicode NFC (not NFKC, which rewrites meaningful compatibility characters such as '²' and '½').
2. The language's indic-nlp normalizer (`normalizer` in `langs/<code>.toml`), line by line: canonical
   nukta forms (Marathi ऱ U+0931 -> र + nukta), ZWJ/ZWNJ removed, ':' after a letter of the script -> visarga,
   quotes and ellipses unified. Without it a word written both ways gets two sets of subword pieces, one
   of which never appears in pretraining.
3. Control characters and zero-width spaces removed, runs of spaces collapsed (newlines kept: the corpus
   splits paragraphs on them).
4. The social-media rules (`corpus.social.normalize_social`: URL/mention/hashtag/emoji markers, elongation
   and repeated punctuation cut, case markers), on one line of text (a sentence or a task document).

Steps 1-3 are `basic_normalize`; the corpus cleaner applies them to a whole document before splitting it
into sentences, then step 4 to each kept sentence. Task documents are one line: `normalize_text` applies
all four at once. Both paths give the same string for the same one-line text (tested).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

_SPACE_RE = re.compile(r"[^\S\n]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b\ufeff]")


@functools.lru_cache(maxsize=None)
def indic_normalizer(lang: str) -> Any:
    """indic-nlp-library's normalizer for a language code (created once per process)."""
    from indicnlp.normalize.indic_normalize import IndicNormalizerFactory

    return IndicNormalizerFactory().get_normalizer(lang)


def basic_normalize(text: str, normalizer_lang: str | None) -> str:
    """Steps 1-3: NFC, the indic-nlp normalizer (when the language has one), control characters, spaces."""
    text = unicodedata.normalize("NFC", text)
    if normalizer_lang:
        normalizer = indic_normalizer(normalizer_lang)
        text = "\n".join(normalizer.normalize(line) for line in text.split("\n"))
    text = _CONTROL_RE.sub("", text)
    return _SPACE_RE.sub(" ", text)


def social_normalize(line: str) -> str:
    """Step 4: the social-media rules on one line of text, stripped."""
    from .social import normalize_social

    return normalize_social(line).strip()


def normalize_text(text: str, normalizer_lang: str | None) -> str:
    """All four steps on one document (newlines inside it become spaces)."""
    return social_normalize(basic_normalize(text, normalizer_lang).replace("\n", " "))
