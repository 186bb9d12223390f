"""Language specs: one TOML file per language under langs/.

A spec holds facts about a language that every recipe shares: ISO code,
scripts, Wikipedia dump name, indic-nlp normalizer language, how task text
is usually written, the transliteration scheme and SentencePiece defaults.
Adding a language is adding one file (see README, "Adding a language"): in ./langs, a folder named by
--langs-dir or $ULMFIT_MULTI_LANGS, or the package's own (resources.py has the search order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import resources
from .schema import from_dict, read_toml, suggest
from .errors import RecipeError

LANGS_DIR = resources.builtin_dir("langs")  # the built-in specs (the last folder searched)


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


def lang_sources() -> list[resources.Found]:
    """Every language spec found (code, file, the folder it came from), first match of each code."""
    return resources.listing("langs", LANGS_DIR)


def lang_files() -> list[Path]:
    """All language spec files (the ones `load_lang` reads)."""
    return [f.path for f in lang_sources()]


def find_lang(code: str) -> Path | None:
    """The file `load_lang(code)` reads, or None."""
    found = resources.find("langs", code, LANGS_DIR)
    return found.path if found else None


def load_lang(code: str, where: str = "") -> LangSpec:
    """Load <code>.toml from the language folders, validated; unknown codes list the known ones."""
    path = find_lang(code)
    if path is None:
        known = [p.stem for p in lang_files()]
        prefix = f"{where}: " if where else ""
        close = suggest(code, known)
        listing = "" if "known:" in close else f"; known: {', '.join(known)}"
        raise RecipeError(f"{prefix}unknown language code '{code}'{close}{listing} (looked in "
                          f"{resources.describe_dirs('langs', LANGS_DIR)})")
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
