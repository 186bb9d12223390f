"""Write-then-rename helpers: nothing half-written ever looks complete.

Every artifact the toolkit writes goes through `atomic_write` (or `write_json`,
`save_torch`, which use it); stage folders are published with `replace_folder` (the stage engine, downloads
from a remote store). A temporary name
is used while writing and `os.replace` publishes the result only after success.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as pretty, key-sorted JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a temporary file and a rename."""
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def remove_path(path: str | os.PathLike) -> None:
    """Remove a symlink (not what it points to), a file or a folder tree; nothing when there is nothing there."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def replace_folder(new: str | os.PathLike, done: str | os.PathLike, aside: str | os.PathLike) -> None:
    """Put the folder `new` at `done`, replacing what is there: the old folder (or symlink) is first moved to
    `aside` and removed after, so `done` is never a half-removed folder."""
    done, aside = Path(done), Path(aside)
    if done.exists() or done.is_symlink():
        remove_path(aside)
        os.replace(done, aside)
    os.replace(new, done)
    remove_path(aside)
