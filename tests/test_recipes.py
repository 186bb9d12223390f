"""Every shipped recipe loads with every preset it declares (torchtune's test_configs idea)."""

from __future__ import annotations

import tomllib

import pytest

from ulmfit_multi.config import PRESETS, list_recipes, load_recipe
from ulmfit_multi.fetch import url_for
from ulmfit_multi.langs import load_lang

RECIPES = list_recipes()


def _declared_presets(path) -> list[str]:
    with open(path, "rb") as f:
        return list(tomllib.load(f).get("preset", {}))


CASES = [(path, preset) for path in RECIPES for preset in ["base", *_declared_presets(path)]]


def test_recipes_ship():
    assert {p.stem for p in RECIPES} >= {"mr", "hi", "ta", "ml", "kn"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_declared_presets_are_known_names(path):
    assert set(_declared_presets(path)) <= set(PRESETS)
    assert "smoke" in _declared_presets(path)  # CI's smoke runs need it


@pytest.mark.parametrize("path, preset", CASES, ids=[f"{p.stem}-{s}" for p, s in CASES])
def test_recipe_loads_with_preset(path, preset):
    cfg = load_recipe(path.stem, preset)
    assert cfg.preset == preset
    assert cfg.recipe.name == path.stem
    assert cfg.recipe.langs
    for code in cfg.recipe.langs:
        load_lang(code)
    # (a recipe may have no tasks: hi.toml only pretrains an LM)
    names = {t.name for t in cfg.tasks}
    for ref in cfg.reference:
        assert ref.task in names
        assert 0 < ref.value <= 1  # fractions, not percentages
    for task in cfg.tasks:
        assert "train" in task.splits and "test" in task.splits, task.name
        assert task.lang in cfg.recipe.langs or load_lang(task.lang)
    remotes = [(r.prefix, r.url) for r in cfg.data.remotes]
    for task in cfg.tasks:
        for rel in task.splits.values():
            # every task file can be found: it has a URL or a checksum entry for the mirror
            assert url_for(rel, remotes) or rel in cfg.data.sha256, f"{path.name}: {rel} has no URL or sha256"
    for rel, digest in cfg.data.sha256.items():
        assert len(digest) == 64 and int(digest, 16) >= 0, rel


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_smoke_preset_is_smaller_than_base(path):
    base, smoke = load_recipe(path.stem, "base"), load_recipe(path.stem, "smoke")
    assert smoke.model.hidden_size <= base.model.hidden_size
    assert smoke.pretrain.epochs <= base.pretrain.epochs
    assert len(smoke.evaluate.seeds) <= len(base.evaluate.seeds)


@pytest.mark.realdata
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_checksums_match_the_mirror(path, mirror_dir):
    from ulmfit_multi.atomic import sha256_file

    cfg = load_recipe(path.stem, "smoke")
    checked = 0
    for rel, digest in cfg.data.sha256.items():
        local = mirror_dir / rel
        if local.is_file():
            assert sha256_file(local) == digest, rel
            checked += 1
    if not checked:
        pytest.skip(f"no file of {path.name} in the mirror")


def _with_typo(path, tmp_path):
    """A copy of a shipped recipe whose [pretrain] table says epochs = "three" (each preset sets its own)."""
    from ulmfit_multi.schema import to_toml

    with open(path, "rb") as f:
        raw = tomllib.load(f)
    raw.setdefault("pretrain", {})["epochs"] = "three"
    copy = tmp_path / path.name
    copy.write_text(to_toml(raw), encoding="utf-8")
    return copy


@pytest.mark.parametrize("path, preset", CASES, ids=[f"{p.stem}-{s}" for p, s in CASES])
def test_a_mistyped_value_fails_under_every_preset(path, preset, tmp_path):
    """The file as written is validated before a preset (which sets pretrain.epochs) or --set replaces it."""
    from ulmfit_multi.errors import RecipeError

    copy = _with_typo(path, tmp_path)
    with pytest.raises(RecipeError, match=r"'pretrain\.epochs' must be an integer, got 'three'"):
        load_recipe(copy, preset)
    with pytest.raises(RecipeError, match=r"'pretrain\.epochs' must be an integer"):
        load_recipe(copy, preset, ["pretrain.epochs=2"])


def test_a_recipe_path_is_not_given_a_second_suffix(tmp_path):
    from ulmfit_multi.errors import RecipeError

    with pytest.raises(RecipeError) as e:
        load_recipe(tmp_path / "x.toml")
    assert "x.toml.toml" not in str(e.value) and "x.toml" in str(e.value)
    with pytest.raises(RecipeError) as e:
        load_recipe("x.toml")
    assert "x.toml.toml" not in str(e.value)
