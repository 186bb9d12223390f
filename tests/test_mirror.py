"""A mirror at a URI: the files the recipe names are copied once into a local mirror copy, whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmfit_multi.config import load_recipe
from ulmfit_multi.mirror import mirror_rels, sync_mirror
from ulmfit_multi.paths import Paths
from ulmfit_multi.pipeline import run_recipe

from test_pipeline import write_tiny

pytest.importorskip("fsspec")


def test_the_recipe_files_come_from_a_uri_mirror_once(tmp_path: Path, monkeypatch) -> None:
    mirror, recipe = write_tiny(tmp_path)
    (mirror / "mr/unrelated.txt").write_text("not named by the recipe")
    monkeypatch.setenv("ULMFIT_MULTI_MIRROR_CACHE", str(tmp_path / "mirror-copy"))
    paths = Paths.resolve(tmp_path / "data", mirror.as_uri(), tmp_path / "work")
    assert paths.mirror_remote == mirror.as_uri() and paths.mirror == (tmp_path / "mirror-copy").resolve()
    cfg = load_recipe(recipe, "base")
    rels = mirror_rels(cfg)
    assert "mr/task/train.csv" in rels and "mr/wiki/tiny.xml.bz2" in rels
    assert sorted(sync_mirror(cfg, paths)) == sorted(r for r in rels if (mirror / r).exists())
    for rel in rels:
        if (mirror / rel).exists():
            assert (paths.mirror / rel).read_bytes() == (mirror / rel).read_bytes()
    assert not (paths.mirror / "mr/unrelated.txt").exists()
    assert not list(paths.mirror.rglob("*.download"))
    assert sync_mirror(cfg, paths) == []  # already there: nothing downloaded again


def test_a_folder_source_is_copied_whole(tmp_path: Path, monkeypatch) -> None:
    remote = tmp_path / "remote"
    (remote / "mr/text/books/a").mkdir(parents=True)
    (remote / "mr/text/books/a/one.txt").write_text("one")
    (remote / "mr/text/books/two.txt").write_text("two")
    monkeypatch.setenv("ULMFIT_MULTI_MIRROR_CACHE", str(tmp_path / "copy"))
    paths = Paths.resolve(tmp_path / "data", remote.as_uri(), tmp_path / "work")
    _, recipe = write_tiny(tmp_path / "r")
    cfg = load_recipe(recipe, "base")
    cfg.corpus.sources[0].path = "mr/text/books"
    assert "mr/text/books" in sync_mirror(cfg, paths)
    assert (paths.mirror / "mr/text/books/a/one.txt").read_text() == "one"
    assert (paths.mirror / "mr/text/books/two.txt").read_text() == "two"


def test_a_recipe_runs_from_a_uri_mirror(tmp_path: Path, monkeypatch) -> None:
    mirror, recipe = write_tiny(tmp_path)
    monkeypatch.setenv("ULMFIT_MULTI_MIRROR_CACHE", str(tmp_path / "mirror-copy"))
    result = run_recipe(recipe, preset="base", mirror=mirror.as_uri(), work_dir=tmp_path / "work",
                        data_dir=tmp_path / "data", progress=False, device="cpu", until="encode")
    assert all(s.status == "ran" for s in result.stages)
    assert (tmp_path / "mirror-copy/mr/task/test.csv").exists()
    assert not (tmp_path / "data/mr").exists()  # read from the mirror copy, nothing downloaded to the data root
