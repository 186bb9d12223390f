"""Files from the mirror, the data root or their URL: resumable, verified downloads.

Lookup order for a relative path such as `mr/wiki/mrwiki-...xml.bz2`:
  1. the read-only mirror (`--mirror` / $ULMFIT_MULTI_MIRROR), same relative layout;
  2. the data root (`--data-dir` / $ULMFIT_MULTI_DATA), where downloads land;
  3. its URL: downloaded to `<name>.part` with HTTP Range resume, checked against
     sha256, then renamed. A checksum mismatch moves the file to `<name>.bad`.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from .atomic import read_json, sha256_file
from . import remote_files
from .errors import FetchError
from .remote_files import is_object_uri

CHUNK_BYTES = 1 << 16


def download(url: str, dest: Path, *, sha256: str = "", retries: int = 3, timeout_s: float = 30.0,
             progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming a partial `.part` file, and verify its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    if is_object_uri(url):  # s3://, gs://, ...: one GET through fsspec, no ranges to resume
        try:
            remote_files.get(url, part)
        except (OSError, ValueError) as e:
            raise FetchError(f"{dest.name}: download from {url} failed: {e}") from None
        retries = 0
    for attempt in range(retries):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if have and resp.status != 206:  # server ignored Range: start again
                    have = 0
                total = resp.headers.get("Content-Length")
                total_bytes = int(total) + have if total else None
                _copy_stream(resp, part, have, total_bytes, dest.name, progress)
            # http.client ends a body cut short by a dropped connection without an error: check the size,
            # so the next attempt resumes with Range instead of publishing (or .bad-ing) a truncated file
            got_bytes = part.stat().st_size
            if total_bytes is not None and got_bytes < total_bytes:
                raise ConnectionError(f"connection dropped after {got_bytes} of {total_bytes} bytes")
            last_error = None
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # already complete
                last_error = None
                break
            last_error = e
            if e.code in (403, 404):
                break
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
            last_error = e
        if attempt + 1 < retries:
            time.sleep(min(2**attempt * 0.2, 2))
    if last_error is not None:
        raise FetchError(f"{dest.name}: download from {url} failed: {last_error}")
    if sha256:
        got = sha256_file(part)
        if got != sha256:
            bad = dest.with_name(dest.name + ".bad")
            os.replace(part, bad)
            raise FetchError(f"{url}: sha256 mismatch (expected {sha256}, got {got}); the file was kept aside as {bad}")
    os.replace(part, dest)
    return dest


def _copy_stream(resp, part: Path, have: int, total: int | None, label: str, progress: bool) -> None:
    from tqdm import tqdm

    with open(part, "ab" if have else "wb") as out, tqdm(
        total=total, initial=have, unit="B", unit_scale=True, desc=f"fetch {label}",
        disable=not progress, leave=False,
    ) as bar:
        while chunk := resp.read(CHUNK_BYTES):
            out.write(chunk)
            bar.update(len(chunk))


def locate(rel_path: str, *, data_dir: Path, mirror: Path | None, url: str = "", sha256: str = "",
           verify_mirror: bool = True, progress: bool = True, sha256_of: Callable[[Path], str] = sha256_file) -> Path:
    """Return a local, verified copy of `rel_path`, downloading it if needed.

    `sha256_of` hashes a local copy to check it (`inputs.HashCache.sha256` remembers unchanged files)."""
    tried = []
    if mirror is not None:
        cand = mirror / rel_path
        tried.append(str(cand))
        if cand.exists():
            if sha256 and verify_mirror and cand.is_file() and sha256_of(cand) != sha256:
                raise FetchError(f"{cand}: sha256 mismatch with the recipe (expected {sha256}); the mirror copy differs")
            return cand
    local = data_dir / rel_path
    tried.append(str(local))
    if local.exists():
        if not sha256 or local.is_dir() or sha256_of(local) == sha256:
            return local
        bad = local.with_name(local.name + ".bad")
        os.replace(local, bad)
    if not url:
        raise FetchError(f"{rel_path}: not found (tried {', '.join(tried)}) and no URL is known for it")
    try:
        return download(url, local, sha256=sha256, progress=progress)
    except FetchError as e:
        raise FetchError(f"{rel_path}: not found locally (tried {', '.join(tried)}) and {e}") from None


def url_for(rel_path: str, remotes: list[tuple[str, str]]) -> str:
    """The download URL of `rel_path` from the recipe's remotes (longest matching prefix)."""
    best = ""
    best_url = ""
    for prefix, url in remotes:
        if rel_path.startswith(prefix) and len(prefix) > len(best):
            best, best_url = prefix, url
    if not best_url:
        return ""
    rest = rel_path[len(best):]
    return best_url.rstrip("/") + "/" + urllib.request.quote(rest)


def locate_source(rel: str, url: str, *, data_dir: Path, mirror: Path | None, sha256: str = "",
                  progress: bool = True, sha256_of: Callable[[Path], str] = sha256_file) -> Path:
    """A corpus source: a file, or a folder fetched as a .tar.gz/.zip archive in normal use."""
    if url.endswith((".tar.gz", ".tgz", ".zip")) and not rel.endswith((".tar.gz", ".tgz", ".zip")):
        for root in [mirror, data_dir]:
            if root is not None and (root / rel).is_dir():
                return root / rel
        archive = locate(rel + (".zip" if url.endswith(".zip") else ".tar.gz"), data_dir=data_dir,
                         mirror=None, url=url, sha256=sha256, progress=progress, sha256_of=sha256_of)
        return extract_archive(archive, data_dir / rel)
    return locate(rel, data_dir=data_dir, mirror=mirror, url=url, sha256=sha256, progress=progress,
                  sha256_of=sha256_of)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or .tar.gz into `dest` (via a temporary folder); a single top folder is unwrapped."""
    tmp = dest.with_name(dest.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
    inner = list(tmp.iterdir())
    src = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp  # GitHub archives have one top folder
    shutil.move(str(src), str(dest))
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetched_files_exist(done: Path) -> bool:
    """Whether every file a finished fetch stage found (its `fetched.json`) is still there."""
    fetched = read_json(done / "fetched.json")
    return all(Path(v["path"]).exists() for v in fetched.values() if v.get("path"))


def fetch_still_valid(done: Path) -> bool:
    """A finished fetch stage stands while every file it found is still there and no file it could not get
    has a URL: a download that failed is tried again on the next run."""
    fetched = read_json(done / "fetched.json")
    return fetched_files_exist(done) and not any(not v.get("path") and v.get("url") for v in fetched.values())
