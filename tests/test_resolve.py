"""Decisions made before the stages run: a source's full or offline version, the pretrain.from bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ulmfit_multi.config import Source, load_recipe
from ulmfit_multi.paths import Paths
from ulmfit_multi.pipeline import STAGES
from ulmfit_multi.resolve import resolve_inputs, resolve_sources
from ulmfit_multi.stages import compute_fingerprints, run_dir_for

FULL = "mr/wiki/mrwiki-20230501-pages-articles-multistream.xml.bz2"
SAMPLE = "mr/wiki/mrwiki-20230501-pages-articles-multistream.SAMPLE-wellformed.xml.bz2"


def _paths(tmp_path: Path, mirror_files: tuple[str, ...] = (), data_files: tuple[str, ...] = ()) -> Paths:
    for root, files in (("mirror", mirror_files), ("data", data_files)):
        for rel in files:
            (tmp_path / root / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / root / rel).write_bytes(b"x")
    return Paths.resolve(data_dir=tmp_path / "data", mirror=tmp_path / "mirror", work_dir=tmp_path / "work")


def _legacy_mr(tmp_path: Path) -> Path:
    """recipes/mr.toml as it was before its dump had an offline copy: the sample as the source's path."""
    text = (Path(load_recipe("mr").source_file)).read_text(encoding="utf-8")
    start = text.index('path = "mr/wiki/mrwiki-20230501-pages-articles-multistream.xml.bz2"')
    end = text.index("\n", text.index("offline = ", start))
    old = tmp_path / "old" / "mr.toml"
    old.parent.mkdir()
    old.write_text(text[:start] + f'path = "{SAMPLE}"' + text[end:].replace("corpus.max_dump_docs = 2000", ""), "utf-8")
    return old


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_offline_the_mirror_sample_is_read_with_the_fingerprints_of_before(tmp_path: Path, preset: str) -> None:
    old = compute_fingerprints(STAGES, load_recipe(_legacy_mr(tmp_path), preset))
    cfg = resolve_inputs(load_recipe("mr", preset), _paths(tmp_path, mirror_files=(SAMPLE,)))
    assert compute_fingerprints(STAGES, cfg) == old
    src = cfg.corpus.sources[0]
    assert (src.path, src.url, src.offline, src.max_docs) == (SAMPLE, "", "", 0)
    assert cfg.runtime.source_choice["mrwiki"].startswith(f"offline copy: {SAMPLE}")


def test_in_normal_use_the_full_dump_is_read_capped_by_the_cpu_preset(tmp_path: Path) -> None:
    cfg = resolve_inputs(load_recipe("mr", "cpu"), _paths(tmp_path))  # nothing local: fetch downloads the dump
    src = cfg.corpus.sources[0]
    assert src.path == FULL and src.url.startswith("https://dumps.wikimedia.org/mrwiki/20230501/")
    assert src.max_docs == 2000 and cfg.corpus.max_dump_docs == 0
    assert cfg.runtime.source_choice["mrwiki"] == f"full: {FULL} (to be downloaded, first 2000 documents)"
    paper = resolve_inputs(load_recipe("mr", "paper"), _paths(tmp_path))
    assert paper.corpus.sources[0].max_docs == 0  # the paper preset reads all of it


def test_a_downloaded_dump_is_preferred_to_the_mirror_sample(tmp_path: Path) -> None:
    cfg = resolve_inputs(load_recipe("mr", "smoke"), _paths(tmp_path, mirror_files=(SAMPLE,), data_files=(FULL,)))
    assert cfg.corpus.sources[0].path == FULL
    assert "found locally" in cfg.runtime.source_choice["mrwiki"]


def test_without_either_the_run_folder_decides(tmp_path: Path) -> None:
    """`--only` a later stage on a machine without the data finds the stages the run was made with."""
    paths = _paths(tmp_path)
    made = resolve_inputs(load_recipe("mr", "smoke"), _paths(tmp_path, mirror_files=(SAMPLE,)))
    run_dir = run_dir_for(paths, made)
    run_dir.mkdir(parents=True)
    from ulmfit_multi.schema import to_toml

    (run_dir / "config.resolved.toml").write_text(to_toml(made.to_dict()), encoding="utf-8")
    (tmp_path / "mirror" / SAMPLE).unlink()
    cfg = resolve_inputs(load_recipe("mr", "smoke"), paths)
    assert cfg.corpus.sources[0].path == SAMPLE
    assert compute_fingerprints(STAGES, cfg) == compute_fingerprints(STAGES, made)


def test_sources_without_an_offline_copy_are_left_as_they_are(tmp_path: Path) -> None:
    cfg = load_recipe("ta", "smoke")
    before = [dataclasses.asdict(s) for s in cfg.corpus.sources]
    resolve_sources(cfg, _paths(tmp_path))
    assert [dataclasses.asdict(s) for s in cfg.corpus.sources] == before and not cfg.runtime.source_choice


def test_resolving_twice_changes_nothing(tmp_path: Path) -> None:
    paths = _paths(tmp_path, mirror_files=(SAMPLE,))
    cfg = resolve_inputs(load_recipe("mr", "cpu"), paths)
    once = compute_fingerprints(STAGES, cfg)
    assert compute_fingerprints(STAGES, resolve_inputs(cfg, paths)) == once


def test_source_caps_are_checked() -> None:
    from ulmfit_multi.errors import RecipeError

    with pytest.raises(RecipeError, match="corpus.max_dump_docs"):
        load_recipe("mr", "smoke", ["corpus.max_dump_docs=-1"])
    assert Source().offline == "" and Source().max_docs == 0
