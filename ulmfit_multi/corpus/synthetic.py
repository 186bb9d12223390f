"""Synthetic code-mixed pretraining text: native sentences romanized the way people type, with English mixed in.

iNLTK pretrained its Dravidian code-mix ULMFiT on Wikipedia text romanized this way. Per sentence:
with probability `romanized_share` the whole sentence is romanized (`scheme`, "casual" by default);
otherwise each native token is romanized with probability `token_switch_prob` (intra-sentence mixing).
Then, after each token, with probability `english_mix` an English word or short phrase is inserted,
taken from `english` lines (1-3 consecutive words) or a built-in list of words common in comments.
One `random.Random(seed)` drives every choice, so the output is a function of input and config.
Blank lines (document separators) are kept as they are. The settings are the recipe's
`corpus.synthetic` table (`config.SyntheticMix`); its `enabled` is the corpus stage's business.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..atomic import atomic_write
from ..config import SyntheticMix
from ..errors import DataError, RecipeError
from .script import LANG_SCRIPTS, script_mix, token_script
from .translit import SCHEMES, romanize

# English words and phrases frequent in Indian YouTube comments (used when no English text is given).
ENGLISH_PHRASES: tuple[str, ...] = (
    "super", "nice", "movie", "trailer", "waiting", "like", "fans", "mass", "all the best", "very nice",
    "good", "bro", "sir", "super hit", "love you", "awesome", "song", "thank you", "really", "best",
    "please", "video", "next level", "scene", "hero", "story", "worst", "so cute", "first day", "congrats",
)
STATS_LINES = 20_000  # lines sampled for the script-mix statistics


def _validate(cfg: SyntheticMix, lang: str) -> None:
    for name in ("romanized_share", "english_mix", "token_switch_prob"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise RecipeError(f"synthetic: '{name}' must be in [0, 1], got {value}")
    if cfg.scheme not in SCHEMES:
        raise RecipeError(f"synthetic: 'scheme' must be one of {SCHEMES}, got {cfg.scheme!r}")
    if lang not in LANG_SCRIPTS:
        raise RecipeError(f"synthetic: no native script known for language {lang!r}")


def _english_piece(rng: random.Random, english: Sequence[str]) -> str:
    if not english:
        return rng.choice(ENGLISH_PHRASES)
    words = rng.choice(english).split()
    if not words:
        return rng.choice(ENGLISH_PHRASES)
    size = rng.randint(1, min(3, len(words)))
    start = rng.randrange(len(words) - size + 1)
    return " ".join(words[start:start + size])


def _mix_sentence(line: str, lang: str, cfg: SyntheticMix, rng: random.Random,
                  english: Sequence[str]) -> tuple[str, bool]:
    """One sentence -> (synthetic sentence, whether it was romanized whole)."""
    native = LANG_SCRIPTS[lang]
    whole = rng.random() < cfg.romanized_share
    tokens = line.split()
    if whole:
        tokens = romanize(line, lang, scheme=cfg.scheme).split()
    elif cfg.token_switch_prob:
        tokens = [romanize(t, lang, scheme=cfg.scheme)
                  if token_script(t) == native and rng.random() < cfg.token_switch_prob else t for t in tokens]
    if cfg.english_mix:
        mixed = []
        for t in tokens:
            mixed.append(t)
            if rng.random() < cfg.english_mix:
                mixed.append(_english_piece(rng, english))
        tokens = mixed
    return " ".join(tokens), whole


def synthesize(lines: Iterable[str], lang: str, cfg: SyntheticMix, english: Sequence[str] = ()) -> Iterator[str]:
    """Synthetic code-mixed line for each input line (blank lines kept); deterministic for a seed."""
    _validate(cfg, lang)
    rng = random.Random(cfg.seed)
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            yield ""
            continue
        yield _mix_sentence(line, lang, cfg, rng, english)[0]


def _read_lines(files: Iterable[Path]) -> Iterator[str]:
    """Lines of all files; a blank line between files so documents never run together."""
    last = ""
    for i, path in enumerate(files):
        try:
            f = open(path, encoding="utf-8")
        except OSError as e:
            raise DataError(f"synthetic: cannot read {path}: {e}") from e
        with f:
            if i and last.strip():
                yield ""
            for last in f:
                yield last.rstrip("\n")


def synthesize_files(in_files: list[Path], out_path: Path, lang: str, cfg: SyntheticMix,
                     english_files: Sequence[Path] = ()) -> dict:
    """Synthesize a corpus file (one sentence a line, blank line between documents) atomically; return stats."""
    _validate(cfg, lang)
    english = [ln for ln in _read_lines(english_files) if ln.strip()]
    rng = random.Random(cfg.seed)
    n_in = n_out = sentences = romanized = 0
    before: list[str] = []
    after: list[str] = []
    with atomic_write(out_path) as f:
        for line in _read_lines(in_files):
            n_in += 1
            if line.strip():
                sentences += 1
                out, whole = _mix_sentence(line, lang, cfg, rng, english)
                romanized += whole
                if len(before) < STATS_LINES:
                    before.append(line)
                    after.append(out)
            else:
                out = ""
            f.write(out + "\n")
            n_out += 1
    return {
        "lang": lang, "config": asdict(cfg), "out": str(out_path), "lines_in": n_in, "lines_out": n_out,
        "sentences": sentences, "romanized_sentences": romanized,
        "romanized_share": romanized / sentences if sentences else 0.0,
        "script_mix_before": script_mix(before), "script_mix_after": script_mix(after),
        "english_lines": len(english),
    }
