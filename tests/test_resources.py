"""Where recipes and language specs are found: flags/env folders, ./recipes and ./langs, the package's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmfit_multi import resources
from ulmfit_multi.config import RECIPES_DIR, load_recipe, recipe_path
from ulmfit_multi.errors import RecipeError
from ulmfit_multi.langs import lang_sources, load_lang

LANG = 'code = "{code}"\nname = "{name}"\nscripts = ["Deva", "Latn"]\nnormalizer = "mr"\ntask_text = "mixed"\n'
RECIPE = '[recipe]\nlangs = ["{lang}"]\n'


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current directory outside the checkout, with no environment folders."""
    monkeypatch.chdir(tmp_path)
    for env in resources.ENV.values():
        monkeypatch.delenv(env, raising=False)
    return tmp_path


def test_builtin_folders_are_the_repository_files_read_through_the_package() -> None:
    repo = Path(__file__).resolve().parent.parent
    assert resources.builtin_dir("recipes") == (repo / "recipes").resolve() == RECIPES_DIR
    assert resources.builtin_dir("langs") == (repo / "langs").resolve()
    with pytest.raises(ValueError):
        resources.builtin_dir("models")


def test_outside_the_checkout_the_builtin_ones_are_found(elsewhere: Path) -> None:
    assert recipe_path("mr") == RECIPES_DIR / "mr.toml"
    assert {f.origin for f in resources.listing("recipes")} == {"built-in"}
    assert load_lang("mr").name == "Marathi"


def test_the_current_directory_comes_before_the_builtin_ones_and_says_so(elsewhere: Path) -> None:
    (elsewhere / "langs").mkdir()
    (elsewhere / "langs" / "mr-en.toml").write_text(LANG.format(code="mr-en", name="Marathi-English"), "utf-8")
    (elsewhere / "langs" / "mr.toml").write_text(LANG.format(code="mr", name="My Marathi"), "utf-8")
    (elsewhere / "recipes").mkdir()
    (elsewhere / "recipes" / "mine.toml").write_text(RECIPE.format(lang="mr-en"), "utf-8")
    origins = {f.name: (f.origin, f.path) for f in lang_sources()}
    assert origins["mr-en"] == ("./langs", elsewhere / "langs" / "mr-en.toml")
    assert origins["mr"][0] == "./langs" and origins["ta"][0] == "built-in"
    assert load_lang("mr").name == "My Marathi"  # a user's spec shadows the built-in one
    cfg = load_recipe("mine")
    assert cfg.recipe.langs == ["mr-en"] and cfg.source_file == str(elsewhere / "recipes" / "mine.toml")


def test_environment_folders_come_first_in_their_order(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = elsewhere / "a", elsewhere / "b"
    for folder in (first, second, elsewhere / "recipes"):
        folder.mkdir()
        (folder / "x.toml").write_text(RECIPE.format(lang="mr"), "utf-8")
    monkeypatch.setenv("ULMFIT_MULTI_RECIPES", f"{first}:{second}")
    assert recipe_path("x") == first / "x.toml"
    found = resources.find("recipes", "x")
    assert found is not None and found.origin == "$ULMFIT_MULTI_RECIPES"
    resources.add_dirs("recipes", [second])  # what --recipes does: in front of the environment's folders
    assert recipe_path("x") == second / "x.toml"


def test_unknown_recipe_names_the_folders_searched(elsewhere: Path) -> None:
    with pytest.raises(RecipeError, match=r"unknown recipe 'mrr': no file mrr.toml in .*\./recipes.*built-in.*did you "
                                          r"mean 'mr'"):
        recipe_path("mrr")
    with pytest.raises(RecipeError, match="no file sub/x.toml"):
        recipe_path("sub/x.toml")
    assert recipe_path("mr.toml") == RECIPES_DIR / "mr.toml"  # a .toml that is no file: looked for by name


def test_a_folder_listed_twice_is_searched_once(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULMFIT_MULTI_LANGS", str(resources.builtin_dir("langs")))
    dirs = resources.search_dirs("langs")
    assert [origin for _, origin in dirs] == ["./langs", "built-in"]


def test_the_wheel_carries_the_builtin_folders() -> None:
    """pyproject.toml's package data covers ulmfit_multi/builtin/{recipes,langs}, links to the top-level folders
    (the wheel gets copies; `.ci/run` installs one and runs it from outside the checkout)."""
    import tomllib

    repo = Path(__file__).resolve().parent.parent
    data = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert set(data["ulmfit_multi"]) == {"builtin/recipes/*.toml", "builtin/langs/*.toml"}
    for kind in ("recipes", "langs"):
        link = repo / "ulmfit_multi" / "builtin" / kind
        assert link.is_symlink() and link.resolve() == (repo / kind).resolve()
