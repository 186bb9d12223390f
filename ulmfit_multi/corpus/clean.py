"""Per-language cleaning: normalize, split into sentences, filter by length and language, dedupe.

Unicode normalization is NFC, not NFKC: NFKC rewrites meaningful compatibility characters
('²' -> '2', '½' -> '1⁄2', ligatures), while script-specific canonicalization of Indic text
(nukta forms, vowel signs, danda variants) is the indic-nlp normalizer's job.

Order per document: NFC -> indic-nlp normalizer -> whitespace (`normalize.basic_normalize`) -> sentence
split -> min_chars -> language ID -> the social-media rules per kept sentence (`normalize.social_normalize`,
with `social`): the same steps as task text (`normalize.normalize_text`), so a word is written the same way
in the LM corpus and in the tasks. Deduplication needs state across documents, so `Deduper` is applied by the
caller (one process, in document order, so the result does not depend on worker count).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from .lid import LanguageIdentifier
from .normalize import basic_normalize, social_normalize

# a simple splitter for languages indic-nlp does not cover: end punctuation followed by space + capital/digit
_SIMPLE_SPLIT_RE = re.compile(r"(?<=[.!?।॥])\s+(?=[\"'“‘(\[]?[^\W_a-z])")
_INDIC_SENTENCE_LANGS = {"hi", "mr", "sa", "ne", "kok", "bn", "as", "or", "pa", "gu", "ta", "te", "kn", "ml",
                         "ur", "sd", "mai", "brx", "mni", "doi", "sat", "si", "en"}


@dataclass(frozen=True)
class CleanConfig:
    """How to clean text of one language."""

    lang: str
    normalizer_lang: str | None = None
    lid: bool = True
    lid_threshold: float = 0.5
    min_chars: int = 20
    lid_accept: tuple[str, ...] = ()  # other lid.176 labels taken as this language (e.g. 'hi' for short Marathi)
    social: bool = False  # the social-media rules on each kept sentence (as task text gets them)


class TextCleaner:
    """Turns a document's text into clean sentences, counting what each filter drops."""

    def __init__(self, config: CleanConfig) -> None:
        self.config = config
        self._split = _sentence_splitter(config.lang)
        self._lid = LanguageIdentifier() if config.lid else None

    def normalize(self, text: str) -> str:
        """NFC, then the indic-nlp normalizer (if configured), then whitespace."""
        return basic_normalize(text, self.config.normalizer_lang)

    def split_sentences(self, text: str) -> list[str]:
        """Sentences of each paragraph (line) of `text`, stripped, empty ones removed."""
        out = []
        for paragraph in text.split("\n"):
            paragraph = paragraph.strip()
            if paragraph:
                out.extend(s for s in (s.strip() for s in self._split(paragraph)) if s)
        return out

    def clean(self, text: str, dropped: Counter) -> list[str]:
        """Clean sentences of one document; adds the dropped counts to `dropped` ('min_chars', 'lid')."""
        sentences = self.split_sentences(self.normalize(text))
        kept = [s for s in sentences if len(s) >= self.config.min_chars]
        dropped["min_chars"] += len(sentences) - len(kept)
        if self._lid is not None and kept:
            preds = self._lid.predict(kept)
            ok = []
            accept = {self.config.lang, *self.config.lid_accept}
            for sentence, (lang, prob) in zip(kept, preds):
                if lang in accept and prob >= self.config.lid_threshold:
                    ok.append(sentence)
                else:
                    dropped["lid"] += 1
                    dropped[f"lid:{lang}"] += 1
            kept = ok
        if self.config.social:
            kept = [t for t in map(social_normalize, kept) if t]
        return kept


class Deduper:
    """Exact deduplication on a hash of the normalized sentence."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_new(self, sentence: str) -> bool:
        """True the first time a sentence is seen."""
        key = hashlib.blake2b(sentence.encode("utf-8"), digest_size=12).digest()
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _sentence_splitter(lang: str):
    if lang in _INDIC_SENTENCE_LANGS and lang != "en":
        from indicnlp.tokenize.sentence_tokenize import sentence_split

        return lambda text: sentence_split(text, lang)
    return simple_sentence_split


def simple_sentence_split(text: str) -> list[str]:
    """Split after . ! ? । ॥ when followed by whitespace and an uppercase letter, digit or other script."""
    return _SIMPLE_SPLIT_RE.split(text)
