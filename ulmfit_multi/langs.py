"""Language specs: one TOML file per language under langs/.

A spec holds facts about a language that every recipe shares: ISO code,
scripts, Wikipedia dump name, indic-nlp normalizer language, how task text
is usually written, the transliteration scheme and SentencePiece defaults.
Adding a language is adding one file (see README, "Adding a language").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .paths import REPO_ROOT
from .schema import from_dict, read_toml, suggest
from .errors import RecipeError

LANGS_DIR = REPO_ROOT / "langs"


@dataclass
class LangSpec:
    """Facts about one language."""

    code: str = ""
    name: str = ""
    scripts: list[str] = field(default_factory=list)  # ISO 15924, e.g. ["Deva"]
    wiki: str = ""  # Wikipedia dump name, e.g. "mrwiki"
    normalizer: str = ""  # indic-nlp-library language code ("" = Unicode normalization only)
    sentence_splitter: str = ""  # indic-nlp sentence splitter language ("" = generic)
    task_text: str = "native"  # how task text is usually written: "native" | "romanized" | "mixed"
    transliteration: str = ""  # romanization scheme used for synthetic text, e.g. "casual"
    vocab_size: int = 15_000
    character_coverage: float = 0.9995
    model_type: str = "unigram"
    lid_code: str = ""  # label in fastText lid.176 (defaults to code)
    lid_accept: list[str] = field(default_factory=list)  # other lid.176 labels accepted as this language


def lang_files() -> list[Path]:
    """All language spec files."""
    return sorted(LANGS_DIR.glob("*.toml"))


def load_lang(code: str, where: str = "") -> LangSpec:
    """Load langs/<code>.toml, validated; unknown codes list the known ones."""
    path = LANGS_DIR / f"{code}.toml"
    if not path.exists():
        known = [p.stem for p in lang_files()]
        prefix = f"{where}: " if where else ""
        close = suggest(code, known)
        listing = "" if "known:" in close else f"; known: {', '.join(known)}"
        raise RecipeError(f"{prefix}unknown language code '{code}'{close}{listing}")
    spec: LangSpec = from_dict(LangSpec, read_toml(path), str(path))
    if spec.code != code:
        raise RecipeError(f"{path}: 'code' is '{spec.code}' but the file is named {code}.toml")
    if spec.task_text not in ("native", "romanized", "mixed"):
        raise RecipeError(f"{path}: 'task_text' must be native, romanized or mixed, got {spec.task_text!r}")
    spec.lid_code = spec.lid_code or spec.code
    return spec


def all_langs() -> list[LangSpec]:
    """Every language spec, sorted by code."""
    return [load_lang(p.stem) for p in lang_files()]
