"""Bundles: a folder or a .zip, every file checksummed, the format version checked on opening."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from ulmfit_multi.bundle import CHECKSUMS, FORMAT_VERSION, MANIFEST, Bundle, BundleError, bundle_checksum, \
    finish_bundle, staging_dir


def _make(out: Path, kind: str = "lm") -> Path:
    staging = staging_dir(out)
    (staging / "tokenizer").mkdir()
    (staging / "tokenizer" / "spm.model").write_bytes(b"model bytes")
    (staging / "MODEL.md").write_text("# a card\n", encoding="utf-8")
    return finish_bundle(staging, out, {"kind": kind, "name": "x", "code": {"ulmfit_multi": "0.1.0"}})


@pytest.mark.parametrize("name", ["b", "b.zip"])
def test_a_bundle_opens_from_a_folder_or_a_zip(tmp_path: Path, name: str) -> None:
    out = _make(tmp_path / name)
    assert not list(tmp_path.glob(".*partial"))
    bundle = Bundle.open(out)
    assert bundle.kind == "lm" and bundle.manifest["format_version"] == FORMAT_VERSION
    assert set(bundle.names()) == {MANIFEST, CHECKSUMS, "MODEL.md", "tokenizer/spm.model"}
    assert bundle.read_bytes("tokenizer/spm.model") == b"model bytes"
    assert bundle.manifest["files"]["MODEL.md"] == hashlib.sha256(b"# a card\n").hexdigest()
    with bundle.folder("tokenizer") as folder:
        assert (folder / "spm.model").read_bytes() == b"model bytes"
    assert bundle.checksum == bundle_checksum(out)
    checksums = bundle.read_bytes(CHECKSUMS).decode()
    assert f"  {MANIFEST}\n" in checksums and "  tokenizer/spm.model\n" in checksums  # sha256sum -c format


def test_a_folder_checks_with_sha256sum_format(tmp_path: Path) -> None:
    out = _make(tmp_path / "b")
    for line in (out / CHECKSUMS).read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_a_changed_missing_or_extra_file_is_refused(tmp_path: Path) -> None:
    out = _make(tmp_path / "b")
    (out / "MODEL.md").write_text("# edited\n", encoding="utf-8")
    with pytest.raises(BundleError, match="MODEL.md fails its checksum"):
        Bundle.open(out)
    Bundle.open(out, verify=False)  # looking without verifying works
    (out / "MODEL.md").write_text("# a card\n", encoding="utf-8")
    (out / "extra.txt").write_text("x", encoding="utf-8")
    with pytest.raises(BundleError, match=r"not listed: \['extra.txt'\]"):
        Bundle.open(out)


@pytest.mark.parametrize("version, advice", [(FORMAT_VERSION + 1, "install ulmfit-multi 9.9"),
                                             (0, "export it again from its run")])
def test_another_format_version_fails_with_what_to_do(tmp_path: Path, version: int, advice: str) -> None:
    out = _make(tmp_path / "b.zip")
    with zipfile.ZipFile(out) as z:
        files = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(files[MANIFEST])
    manifest.update(format_version=version, code={"ulmfit_multi": "9.9"})
    files[MANIFEST] = json.dumps(manifest).encode()
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(BundleError, match=f"bundle format version {version} .*written by ulmfit-multi 9.9.*reads "
                                          f"format version {FORMAT_VERSION}: {advice}"):
        Bundle.open(other)


def test_what_is_not_a_bundle_says_so(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.open(tmp_path / "missing.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no bundle.json"):
        Bundle.open(tmp_path / "empty")
    (tmp_path / "empty" / MANIFEST).write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(BundleError, match="not an ulmfit-multi bundle"):
        Bundle.open(tmp_path / "empty")


def test_an_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    out = _make(tmp_path / "b.zip")
    with pytest.raises(BundleError, match="already exists"):
        _make(out)
