"""Write-then-rename helpers."""

from __future__ import annotations

import hashlib

import pytest

from ulmfit_multi.atomic import atomic_write, read_json, sha256_file, write_json


def test_atomic_write_publishes_on_success(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_write(path) as f:
        f.write("मराठी\n")
        assert not path.exists()  # not visible while writing
    assert path.read_text(encoding="utf-8") == "मराठी\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_atomic_write_binary(tmp_path):
    path = tmp_path / "out.bin"
    with atomic_write(path, "wb") as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_atomic_write_exception_leaves_no_file_and_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_exception_keeps_the_previous_version(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write("new")
            raise KeyboardInterrupt
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_json_read_json_round_trip(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"text": "தமிழ்"}, "ok": True}
    path = tmp_path / "x.json"
    write_json(path, obj)
    assert read_json(path) == obj
    text = path.read_text(encoding="utf-8")
    assert "தமிழ்" in text  # not \u-escaped
    assert text.index('"a"') < text.index('"b"')  # keys sorted
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_replace_folder_puts_the_new_folder_over_a_folder_or_a_link(tmp_path) -> None:
    from ulmfit_multi.atomic import remove_path, replace_folder

    done, aside = tmp_path / "done", tmp_path / "done.old"
    for old_is_link in (False, True):
        target = tmp_path / "elsewhere"
        target.mkdir(exist_ok=True)
        (target / "kept.txt").write_text("kept")
        if old_is_link:
            done.symlink_to(target, target_is_directory=True)
        else:
            done.mkdir()
            (done / "old.txt").write_text("old")
        new = tmp_path / "new"
        new.mkdir()
        (new / "a.txt").write_text("a")
        replace_folder(new, done, aside)
        assert not done.is_symlink() and [p.name for p in done.iterdir()] == ["a.txt"]
        assert not new.exists() and not aside.exists() and (target / "kept.txt").exists()  # a link's target stays
        remove_path(done)
        assert not done.exists()
    remove_path(tmp_path / "missing")  # nothing there: nothing to do
