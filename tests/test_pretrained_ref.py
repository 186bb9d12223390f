"""`pretrain.from` (pretrained_ref.py): its TOML key, which is no field name (the field is `from_`), and its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmfit_multi.config import Config, load_recipe, load_run_config
from ulmfit_multi.errors import RecipeError
from ulmfit_multi.schema import from_dict, to_toml


def test_pretrain_from_round_trips_under_its_toml_key(tmp_path: Path) -> None:
    bundle = tmp_path / "lm.zip"
    bundle.write_bytes(b"not read here")
    cfg = load_recipe("mr", "smoke", [f'pretrain.from={{path="{bundle}"}}'])
    assert cfg.pretrain.from_.path == str(bundle)
    data = cfg.to_dict()
    assert data["pretrain"]["from"]["path"] == str(bundle) and "from_" not in data["pretrain"]
    (tmp_path / "config.resolved.toml").write_text(to_toml(data), encoding="utf-8")
    assert load_run_config(tmp_path).pretrain.from_.path == str(bundle)
    assert from_dict(Config, {"pretrain": {"from": {"url": "https://x/y.zip"}}}).pretrain.from_.url == "https://x/y.zip"
    with pytest.raises(RecipeError, match="unknown key 'pretrain.from_'"):
        from_dict(Config, {"pretrain": {"from_": {}}})


def test_pretrain_from_path_is_relative_to_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "lm").mkdir()
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nlangs = ["mr"]\n[pretrain]\nfrom = { path = "lm" }\n', encoding="utf-8")
    assert load_recipe(recipe).pretrain.from_.path == str((tmp_path / "lm").resolve())


@pytest.mark.parametrize("value, message", [
    ('{path="nope.zip"}', "does not exist"),
    ('{url="ftp://x/y.zip"}', "expected an http"),
    ('{url="https://x/y.zip", sha256="abc"}', "64 lowercase hex"),
    ('{sha256="' + "a" * 64 + '"}', "needs a path or a url"),
    ('{paht="x"}', "did you mean 'path'"),
])
def test_pretrain_from_is_validated(value: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe("mr", "smoke", [f"pretrain.from={value}"])


def test_a_default_pretrain_from_leaves_fingerprints_alone() -> None:
    from ulmfit_multi.config import section

    cfg = load_recipe("mr", "smoke")
    assert "from" not in section(cfg, "pretrain", for_fingerprint=True)
    cfg.pretrain.from_.url = "https://x/y.zip"
    assert section(cfg, "pretrain", for_fingerprint=True)["from"]["url"] == "https://x/y.zip"
