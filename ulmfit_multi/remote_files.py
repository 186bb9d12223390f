"""Single files and bundles at object-storage URIs (`s3://bucket/models/gt.zip`, `gs://...`, any fsspec URL but
http(s), which fetch.py downloads itself): export a bundle to one, load a bundle from one, download a recipe's
`pretrain.from.url` from one.

An object appears whole or not at all, so a .zip bundle (one object) is never seen half-written; a folder bundle
is many objects, and a reader of a half-uploaded one fails on its CHECKSUMS.sha256 instead of loading it.
Downloads go to a temporary name and are renamed. A bundle loaded from a URI is kept in a local cache
(`~/.cache/ulmfit_multi/bundles/<protocol>/<bucket>/<key>`) beside a note of the object's size and ETag (or
mtime), and downloaded again when the store's object has changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import remove_path
from .paths import default_work_cache, is_uri


def is_object_uri(location: str | Path | None) -> bool:
    """A URI that fsspec serves (s3://, gs://, file://, ...), not an http(s) URL."""
    return is_uri(location) and not str(location).startswith(("http://", "https://"))


def _fs(uri: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(uri)


def put(local: Path, uri: str) -> None:
    """Upload a file, or a folder's files, to `uri`."""
    fs, key = _fs(uri)
    fs.makedirs(key.rstrip("/").rsplit("/", 1)[0], exist_ok=True)  # a no-op on S3; a folder on file://
    if local.is_dir():
        fs.put(str(local).rstrip("/") + "/", key.rstrip("/"), recursive=True)
    else:
        fs.put_file(str(local), key)


def get(uri: str, dest: Path) -> Path:
    """Download the object (or the folder of objects) at `uri` to `dest`, through a temporary name."""
    fs, key = _fs(uri)
    if not fs.exists(key):
        raise FileNotFoundError(f"{uri}: no such object")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".download")
    remove_path(tmp)
    if fs.isdir(key):
        fs.get(key.rstrip("/") + "/", str(tmp), recursive=True)
    else:
        fs.get_file(key, str(tmp))
    remove_path(dest)
    tmp.rename(dest)
    return dest


def _info(uri: str) -> dict[str, Any]:
    fs, key = _fs(uri)
    info = fs.info(key)
    return {"size": info.get("size"), "version": str(info.get("ETag") or info.get("mtime") or "")}


def cached(uri: str) -> Path:
    """A local copy of the bundle at `uri`, downloaded once and again only when the store's object changed."""
    local = default_work_cache(uri, "bundles")
    note = local.with_name(local.name + ".source.json")
    now = _info(uri)
    if local.exists() and note.exists() and json.loads(note.read_text(encoding="utf-8")) == now:
        return local
    get(uri, local)
    note.write_text(json.dumps(now), encoding="utf-8")
    return local

