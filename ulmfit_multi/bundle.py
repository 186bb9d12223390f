"""Model bundles: one folder, or the same folder as one .zip, holding what a trained model needs on another machine.

    bundle.json            manifest: format name and version, kind ("classifier" or "lm"), how texts become ids
                           (language, normalization, normalizer, document boundary), model sizes, label names,
                           scores, data and code versions, and the sha256 of every other file
    CHECKSUMS.sha256       sha256 of every file but itself (`sha256sum -c CHECKSUMS.sha256` checks a folder)
    MODEL.md               the model card
    config.resolved.toml   the run's resolved recipe, as it ran
    lang.toml              the language spec its texts were normalized with (so a language the other machine
                           does not know still works)
    tokenizer/             spm.model, spm.vocab, tokenizer.json
    fwd/model.pt, bwd/model.pt   state dicts: classifier (encoder and head) or language model, per direction
    scores.jsonl           (classifier) the task's result records from the run's evaluate and baselines stages

Why a folder first: every file can be read as it is (the card, the config, the scores), checked with the
standard `sha256sum -c`, copied with rsync or served from a model hub; `--out NAME.zip` packs the same files
into one file to send around. Both open the same way (`Bundle.open`), and both are verified on opening.

The format version (`FORMAT_VERSION`) changes whenever a reader of the old version could misread a new bundle;
opening a bundle of another version fails with a message naming both versions and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from . import __version__
from .atomic import sha256_file, write_json
from .errors import UlmfitError

FORMAT = "ulmfit-multi-bundle"
FORMAT_VERSION = 1
MANIFEST, CHECKSUMS = "bundle.json", "CHECKSUMS.sha256"
KINDS = ("classifier", "lm")


class BundleError(UlmfitError):
    """A bundle that cannot be used: not a bundle, another format version, a file that fails its checksum."""


def check_format(manifest: dict[str, Any], where: str) -> None:
    """Refuse a manifest that is not this format and version, saying what to do."""
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not an ulmfit-multi bundle (bundle.json has format {manifest.get('format')!r})")
    version, made_by = manifest.get("format_version"), manifest.get("code", {}).get("ulmfit_multi", "?")
    if version != FORMAT_VERSION:
        advice = (f"install ulmfit-multi {made_by} (or newer) to use it" if isinstance(version, int)
                  and version > FORMAT_VERSION else
                  f"export it again from its run with this version, or use ulmfit-multi {made_by}")
        raise BundleError(f"{where}: bundle format version {version} (written by ulmfit-multi {made_by}); this "
                          f"ulmfit-multi {__version__} reads format version {FORMAT_VERSION}: {advice}")
    if manifest.get("kind") not in KINDS:
        raise BundleError(f"{where}: unknown bundle kind {manifest.get('kind')!r}; expected one of {', '.join(KINDS)}")


class Bundle:
    """An opened bundle (a folder or a .zip): its manifest and files, every file checked against its checksum."""

    def __init__(self, path: str | Path, *, verify: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            self._zip = None
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
        else:
            raise BundleError(f"{self.path}: no such bundle (a folder or .zip written by `ulmfit-multi export`)")
        if MANIFEST not in self.names():
            raise BundleError(f"{self.path}: not an ulmfit-multi bundle (no {MANIFEST})")
        self.manifest: dict[str, Any] = json.loads(self.read_bytes(MANIFEST))
        check_format(self.manifest, str(self.path))
        if verify:
            self.verify()

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> "Bundle":
        """Open and (by default) verify a bundle."""
        return cls(path, verify=verify)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, kind={self.kind!r})"

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close a .zip bundle's file (a folder holds nothing open)."""
        if self._zip is not None:
            self._zip.close()

    @property
    def kind(self) -> str:
        """"classifier" or "lm"."""
        return self.manifest["kind"]

    def names(self) -> list[str]:
        """Every file's path inside the bundle ('/'-separated)."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())

    def read_bytes(self, name: str) -> bytes:
        """One file's content."""
        if self._zip is not None:
            try:
                return self._zip.read(name)
            except KeyError:
                raise BundleError(f"{self.path}: no file {name} in the bundle") from None
        f = self.path / name
        if not f.is_file():
            raise BundleError(f"{self.path}: no file {name} in the bundle")
        return f.read_bytes()

    def read_json(self, name: str) -> Any:
        """A JSON file of the bundle."""
        return json.loads(self.read_bytes(name))

    def torch_load(self, name: str) -> Any:
        """A torch file of the bundle (a state dict), on the CPU."""
        import torch

        return torch.load(io.BytesIO(self.read_bytes(name)), map_location="cpu")

    def copy(self, name: str, dest: Path) -> Path:
        """Write one file of the bundle to `dest`."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.read_bytes(name))
        return dest

    @contextlib.contextmanager
    def folder(self, prefix: str) -> Iterator[Path]:
        """The bundle's files under `prefix/` as a local folder (a zip's are extracted to a temporary one)."""
        if self._zip is None:
            yield self.path / prefix
            return
        with tempfile.TemporaryDirectory(prefix="ulmfit-bundle-") as tmp:
            for name in self.names():
                if name.startswith(prefix.rstrip("/") + "/"):
                    self.copy(name, Path(tmp) / name[len(prefix.rstrip("/")) + 1:])
            yield Path(tmp)

    def verify(self) -> None:
        """Check every file against the manifest's checksums; a missing, changed or extra file is an error."""
        expected: dict[str, str] = self.manifest.get("files", {})
        present = set(self.names()) - {MANIFEST, CHECKSUMS}
        missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
        if missing or extra:
            raise BundleError(f"{self.path}: files differ from the manifest (missing: {missing or 'none'}, "
                              f"not listed: {extra or 'none'}); the bundle is incomplete or was changed")
        for name, digest in expected.items():
            got = hashlib.sha256(self.read_bytes(name)).hexdigest()
            if got != digest:
                raise BundleError(f"{self.path}: {name} fails its checksum (sha256 {got[:12]}, expected "
                                  f"{digest[:12]}); the bundle is damaged or was changed")

    @property
    def checksum(self) -> str:
        """The bundle's sha256 (what `pretrain.from.sha256` names): of the .zip, or of a folder's CHECKSUMS.sha256."""
        return bundle_checksum(self.path)


def bundle_checksum(path: str | Path) -> str:
    """sha256 of a bundle: of the .zip file, or (a folder) of its CHECKSUMS.sha256, which covers every file."""
    path = Path(path)
    return sha256_file(path / CHECKSUMS if path.is_dir() else path)


def finish_bundle(staging: Path, out: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest (with every file's sha256) and CHECKSUMS.sha256 into `staging`, then publish it as `out`:
    the folder renamed into place, or packed into `out` when it ends in .zip. `out` must not exist yet."""
    if out.exists():
        raise BundleError(f"{out}: already exists; remove it or choose another --out")
    for p in staging.rglob("*"):  # readable by everyone: a bundle is meant to be shared
        p.chmod(0o755 if p.is_dir() else 0o644)
    staging.chmod(0o755)
    files = {p.relative_to(staging).as_posix(): sha256_file(p) for p in sorted(staging.rglob("*"))
             if p.is_file() and p.name not in (MANIFEST, CHECKSUMS)}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "files": files}
    write_json(staging / MANIFEST, manifest)
    lines = {**files, MANIFEST: sha256_file(staging / MANIFEST)}
    (staging / CHECKSUMS).write_text("".join(f"{d}  {n}\n" for n, d in sorted(lines.items())), encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".zip":
        tmp = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for p in sorted(staging.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(staging).as_posix())
        os.replace(tmp, out)
        shutil.rmtree(staging)
    else:
        os.replace(staging, out)
    return out


def staging_dir(out: Path) -> Path:
    """A fresh folder next to `out` to assemble a bundle in (`out` must not exist yet)."""
    if out.exists():
        raise BundleError(f"{out}: already exists; remove it or choose another --out")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


@contextlib.contextmanager
def building(out: Path) -> Iterator[Path]:
    """`staging_dir(out)` for the block, removed if the block fails: a half-built bundle is never left behind."""
    staging = staging_dir(out)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a bundle (format checked, files not verified): cheap, for looking before opening."""
    with Bundle.open(path, verify=False) as bundle:
        return bundle.manifest

