"""Input-file identities for the stage fingerprints: declared checksums, content hashes, absent files."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from ulmfit_multi import inputs
from ulmfit_multi.config import Config, Source, Task
from ulmfit_multi.errors import DataError
from ulmfit_multi.inputs import ABSENT, HashCache, InputFiles, input_files
from ulmfit_multi.paths import Paths


def _cfg(sha: dict[str, str] | None = None) -> Config:
    cfg = Config()
    cfg.recipe.langs = ["mr"]
    cfg.corpus.sources = [Source(name="dump", path="mr/wiki/dump.xml.bz2"), Source(name="books", path="mr/text/books")]
    cfg.tasks = [Task(name="t", splits={"train": "mr/t/train.csv", "test": "mr/t/test.csv"})]
    cfg.data.sha256 = sha or {}
    return cfg


@pytest.fixture
def tree(tmp_path: Path) -> Paths:
    mirror = tmp_path / "mirror"
    for rel, text in (("mr/wiki/dump.xml.bz2", "dump"), ("mr/text/books/a.txt", "a"), ("mr/text/books/sub/b.txt", "b"),
                      ("mr/t/train.csv", "train")):
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_text(text, encoding="utf-8")
    return Paths(data_dir=tmp_path / "data", mirror=mirror, work_dir=tmp_path / "work")


def test_input_files_lists_sources_and_task_splits_with_their_groups() -> None:
    files = input_files(_cfg({"mr/t/train.csv": "ab" * 32}))
    assert [(f.rel, f.groups) for f in files] == [
        ("mr/wiki/dump.xml.bz2", ("sources",)), ("mr/text/books", ("sources",)),
        ("mr/t/train.csv", ("tasks", "tasks:train")), ("mr/t/test.csv", ("tasks", "tasks:test"))]
    assert files[2].sha256 == "ab" * 32 and files[2].role == "t:train"


def test_identities_content_hash_tree_hash_absent_and_declared_checksums(tree: Paths) -> None:
    ids = InputFiles(_cfg(), tree).identities()
    assert ids["sources"]["mr/wiki/dump.xml.bz2"] == "sha256:" + hashlib.sha256(b"dump").hexdigest()
    assert ids["sources"]["mr/text/books"].startswith("tree:")
    assert ids["tasks"] == {"mr/t/train.csv": "sha256:" + hashlib.sha256(b"train").hexdigest(), "mr/t/test.csv": ABSENT}
    assert ids["tasks:test"] == {"mr/t/test.csv": ABSENT}
    # a file pinned by a correct declared sha256 adds nothing: the checksum is already in the config
    pinned = InputFiles(_cfg({"mr/t/train.csv": hashlib.sha256(b"train").hexdigest()}), tree).identities()
    assert "mr/t/train.csv" not in pinned["tasks"]


def test_a_folder_identity_changes_with_any_file_in_it(tree: Paths) -> None:
    before = InputFiles(_cfg(), tree).identities()["sources"]["mr/text/books"]
    (tree.mirror / "mr/text/books/sub/c.txt").write_text("c", encoding="utf-8")
    assert InputFiles(_cfg(), tree).identities()["sources"]["mr/text/books"] != before


def test_a_file_in_the_data_root_counts_when_the_mirror_lacks_it(tree: Paths) -> None:
    (tree.data_dir / "mr/t").mkdir(parents=True)
    (tree.data_dir / "mr/t/test.csv").write_text("test", encoding="utf-8")
    assert InputFiles(_cfg(), tree).identities()["tasks"]["mr/t/test.csv"].startswith("sha256:")


def test_a_mirror_copy_that_differs_from_its_declared_checksum_is_an_error_naming_it(tree: Paths) -> None:
    with pytest.raises(DataError, match=r"mirror/mr/t/train\.csv: sha256 .* differs .*'mr/t/train\.csv'"):
        InputFiles(_cfg({"mr/t/train.csv": "0" * 64}), tree).identities()


def test_hash_cache_rehashes_only_when_size_or_mtime_change(tree: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = inputs.sha256_file
    monkeypatch.setattr(inputs, "sha256_file", lambda p: calls.append(str(p)) or real(p))
    InputFiles(_cfg(), tree).identities()
    assert len(calls) == 4  # dump, two books, train
    calls.clear()
    InputFiles(_cfg(), tree).identities()  # a new run: the cache file on disk answers
    assert calls == []
    train = tree.mirror / "mr/t/train.csv"
    os.utime(train, ns=(time.time_ns(), time.time_ns() + 10**9))
    InputFiles(_cfg(), tree).identities()
    assert calls == [str(train.resolve())]
    assert (tree.work_dir / "cache" / "sha256.json").exists()


def test_a_corrupt_hash_cache_is_started_again(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "f").write_text("x", encoding="utf-8")
    assert HashCache(tmp_path / "c.json").sha256(tmp_path / "f") == hashlib.sha256(b"x").hexdigest()


def test_untouched_since_sees_edits_copies_and_additions(tree: Paths) -> None:
    files = InputFiles(_cfg(), tree)
    later = time.time() + 5
    assert files.untouched_since(("sources", "tasks"), later)
    assert not files.untouched_since(("tasks",), time.time() - 3600)  # the files were made just now
    assert files.untouched_since((), time.time() - 3600)  # a stage that reads no input file
    # an absent file: its folder must not have changed either (a file added there changes it)
    past = time.time() - 3600
    assert not files.untouched_since(("tasks:test",), past)
