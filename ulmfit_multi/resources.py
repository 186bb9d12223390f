"""Where recipes and language specs are found: the user's folders first, then the ones shipped in the package.

A name (`ulmfit-multi recipe mr`, `recipe.langs = ["mr"]`) is looked up in these folders, first match wins:

    1. --recipes DIR / --langs-dir DIR (the CLI puts them in front of the environment variable's folders)
    2. $ULMFIT_MULTI_RECIPES / $ULMFIT_MULTI_LANGS (folders separated by os.pathsep)
    3. ./recipes / ./langs of the current directory
    4. the built-in ones: package data (`ulmfit_multi/builtin/{recipes,langs}`, read with importlib.resources)

A recipe can also be given by path (`ulmfit-multi recipe path/to/x.toml`). In a checkout the built-in folders
are links to the repository's top-level `recipes/` and `langs/`, so `./recipes` there is the built-in folder
itself; a wheel carries copies of the files. `ulmfit-multi recipes` and `ulmfit-multi langs` show which folder
each name came from.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError
from .schema import suggest

KINDS = ("recipes", "langs")
ENV = {"recipes": "ULMFIT_MULTI_RECIPES", "langs": "ULMFIT_MULTI_LANGS"}
BUILTIN = "built-in"


@dataclass(frozen=True)
class Found:
    """A recipe or language spec file and the folder it came from ("built-in", "./recipes", "$ULMFIT_...")."""

    name: str
    path: Path
    origin: str


def builtin_dir(kind: str) -> Path:
    """The package's own folder of `kind` ("recipes" or "langs")."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    # resolved: in a checkout the links lead to the top-level recipes/ and langs/, the paths a reader knows
    return Path(str(importlib.resources.files("ulmfit_multi").joinpath("builtin", kind))).resolve()


def search_dirs(kind: str, builtin: Path | None = None) -> list[tuple[Path, str]]:
    """(folder, origin) in lookup order; a folder that is the built-in one (a checkout's ./recipes) is listed
    once, as built-in. `builtin` replaces the package's folder (tests)."""
    builtin = builtin_dir(kind) if builtin is None else Path(builtin)
    dirs = [(Path(p).expanduser(), f"${ENV[kind]}") for p in os.environ.get(ENV[kind], "").split(os.pathsep) if p]
    dirs.append((Path.cwd() / kind, f"./{kind}"))
    out: list[tuple[Path, str]] = []
    seen = {_key(builtin)}
    for folder, origin in dirs:
        key = _key(folder)
        if key not in seen:
            seen.add(key)
            out.append((folder, origin))
    return out + [(builtin, BUILTIN)]


def _key(folder: Path) -> str:
    try:
        return str(folder.resolve())
    except OSError:
        return str(folder.absolute())


def find(kind: str, name: str, builtin: Path | None = None) -> Found | None:
    """The first `<name>.toml` in the search folders, or None."""
    for folder, origin in search_dirs(kind, builtin):
        path = folder / f"{name}.toml"
        if path.is_file():
            return Found(name, path, origin)
    return None


def listing(kind: str, builtin: Path | None = None) -> list[Found]:
    """Every name found, sorted, each from the first folder that has it (the one `find` returns)."""
    found: dict[str, Found] = {}
    for folder, origin in search_dirs(kind, builtin):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, Found(path.stem, path, origin))
    return [found[k] for k in sorted(found)]


def describe_dirs(kind: str, builtin: Path | None = None) -> str:
    """The search folders as one line, for error messages."""
    return ", ".join(f"{folder} ({origin})" for folder, origin in search_dirs(kind, builtin))


def add_dirs(kind: str, folders: list[Path]) -> None:
    """Put `folders` in front of the search (what --recipes / --langs-dir do); through the environment variable,
    so worker processes (Ray, multiprocessing) search the same folders."""
    if not folders:
        return
    current = [p for p in os.environ.get(ENV[kind], "").split(os.pathsep) if p]
    os.environ[ENV[kind]] = os.pathsep.join([str(Path(f).expanduser().resolve()) for f in folders] + current)


RECIPES_DIR = builtin_dir("recipes")  # the built-in recipes (the last folder searched)


def recipe_sources() -> list[Found]:
    """Every recipe found by name (name, file, the folder it came from), the first of each name."""
    return listing("recipes", RECIPES_DIR)


def list_recipes() -> list[Path]:
    """Every recipe file found by name (the built-in ones and the user's; see `recipe_path`)."""
    return [f.path for f in recipe_sources()]


def recipe_path(name_or_path: str | Path) -> Path:
    """Find a recipe by path, or by name in the recipe folders; "mr.toml" that is no file is also looked for
    by name."""
    p = Path(name_or_path)
    known = [f.name for f in recipe_sources()]
    if p.suffix == ".toml":
        if p.exists():
            return p
        if len(p.parts) > 1:
            raise RecipeError(f"unknown recipe '{name_or_path}': no file {p}{suggest(p.stem, known)}")
    name = p.stem if p.suffix == ".toml" else str(name_or_path)
    found = find("recipes", name, RECIPES_DIR)
    if found is not None:
        return found.path
    tried = f"{p}, or {name}.toml" if p.suffix == ".toml" else f"{name}.toml"
    raise RecipeError(f"unknown recipe '{name_or_path}': no file {tried} in "
                      f"{describe_dirs('recipes', RECIPES_DIR)}{suggest(p.stem, known)}")
