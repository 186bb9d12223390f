"""The recipe's input files: where each one is, and what it is, for the stage fingerprints.

Every file a recipe reads belongs to a group: "sources" (the corpus sources), "tasks" (every task split)
and "tasks:<split>" (the task files of one split, e.g. "tasks:train"). A stage that reads a group
(`Stage(..., data=("tasks",))`) has the identity of the group's files in its fingerprint, so a changed,
added or removed file reruns the stages that read it and the stages after them, nothing else:

    a file with a sha256 in the recipe (`data.sha256`)  nothing more (the checksum is in the config, and
                                                        fetch verifies the file against it)
    a file or folder without one                        "sha256:<hex>" of its content ("tree:<hex>" for a
                                                        folder: every file's path and sha256)
    a file found neither in the mirror nor the data root "absent"

Content hashes are remembered in `<work>/cache/sha256.json` by (path, size, mtime_ns), so an unchanged
multi-GB dump is hashed once. A mirror copy whose content differs from its declared sha256 is an error
here already, before any stage runs.

Usage:
    files = InputFiles(cfg, paths)
    files.identities()        # {"sources": {...}, "tasks": {"mr/task/test.csv": "absent"}}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .atomic import sha256_file, write_json
from .config import Config
from .errors import DataError
from .fetch import url_for
from .paths import Paths

log = logging.getLogger("ulmfit_multi")
ABSENT = "absent"


@dataclass(frozen=True)
class InputFile:
    """One file (or folder) the recipe reads, as the recipe declares it."""

    group: str  # "sources" | "tasks"
    rel: str  # path under the mirror and the data root
    role: str  # "corpus:<source name>" or "<task>:<split>"
    sha256: str = ""  # declared in data.sha256
    url: str = ""
    optional: bool = False
    split: str = ""  # a task file's split: train, valid, test or unlabeled

    @property
    def groups(self) -> tuple[str, ...]:
        """Every group the file is in: "sources", or "tasks" and "tasks:<split>"."""
        return (self.group, f"{self.group}:{self.split}") if self.split else (self.group,)


def input_files(cfg: Config) -> list[InputFile]:
    """Every corpus source and task split file of a resolved recipe, sources first."""
    remotes = [(r.prefix, r.url) for r in cfg.data.remotes]
    out = [InputFile("sources", s.path, f"corpus:{s.name}", cfg.data.sha256.get(s.path, ""),
                     s.url or url_for(s.path, remotes), s.optional) for s in cfg.corpus.sources]
    for task in cfg.tasks:
        out += [InputFile("tasks", rel, f"{task.name}:{role}", cfg.data.sha256.get(rel, ""), url_for(rel, remotes),
                          split=role) for role, rel in task.splits.items()]
    return out


class HashCache:
    """sha256 of files, remembered by (path, size, mtime_ns) in a JSON file: an unchanged file is hashed once."""

    def __init__(self, path: Path | None, *, writable: bool = True) -> None:
        self.path, self.writable = path, writable
        self._entries: dict[str, list] = {}
        self._dirty = False
        if path is not None and path.exists():
            try:
                self._entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("%s: unreadable hash cache, starting a new one", path)

    def sha256(self, path: Path) -> str:
        """The file's sha256, from the cache when its size and mtime are unchanged."""
        key = str(Path(path).resolve())
        st = os.stat(key)
        hit = self._entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = sha256_file(key)
        self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache back (atomically) if anything was hashed."""
        if self._dirty and self.path is not None and self.writable:
            write_json(self.path, self._entries)
            self._dirty = False


def hash_cache(paths: Paths, *, writable: bool = True) -> HashCache:
    """The work directory's hash cache (`writable=False`: read it, never write it: commands that only look)."""
    return HashCache(paths.work_dir / "cache" / "sha256.json", writable=writable)


def find_local(rel: str, paths: Paths) -> Path | None:
    """Where `rel` is without downloading it: the mirror first, then the data root (fetch's order)."""
    for root in (paths.mirror, paths.data_dir):
        if root is not None and (root / rel).exists():
            return root / rel
    return None


def _tree_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def content_identity(path: Path, cache: HashCache) -> str:
    """"sha256:<hex>" of a file; "tree:<hex>" of a folder (the sorted relative paths and sha256s of its files)."""
    if path.is_file():
        return f"sha256:{cache.sha256(path)}"
    listing = [[str(p.relative_to(path)), cache.sha256(p)] for p in _tree_files(path) if p.is_file()]
    return "tree:" + hashlib.sha256(json.dumps(listing).encode()).hexdigest()


class InputFiles:
    """A recipe's input files as they are now on this machine: identities for the stage engine."""

    def __init__(self, cfg: Config, paths: Paths, cache: HashCache | None = None) -> None:
        self.cfg, self.paths = cfg, paths
        self.cache = cache if cache is not None else hash_cache(paths)
        self.files = input_files(cfg)

    def identities(self) -> dict[str, dict[str, str]]:
        """{group: {relative path: identity}} for every file not pinned by a declared sha256 (see the module
        docstring). Raises DataError when a mirror copy differs from its declared sha256."""
        ids: dict[str, dict[str, str]] = {}
        for f in self.files:
            local = find_local(f.rel, self.paths)
            if local is None:
                identity = ABSENT
            elif f.sha256:
                self._verify_mirror_copy(f, local)
                continue
            else:
                identity = content_identity(local, self.cache)
            for group in f.groups:
                ids.setdefault(group, {})[f.rel] = identity
        self.cache.save()
        return ids

    def _verify_mirror_copy(self, f: InputFile, local: Path) -> None:
        # a data-root copy with the wrong checksum is set aside and downloaded again by fetch; a mirror is
        # read-only, so a wrong copy there is the user's to fix
        in_mirror = self.paths.mirror is not None and local == self.paths.mirror / f.rel
        if in_mirror and local.is_file():
            got = self.cache.sha256(local)
            if got != f.sha256:
                raise DataError(f"{local}: sha256 {got} differs from the recipe's data.sha256 entry for {f.rel!r} "
                                f"({f.sha256}); replace the mirror copy, or fix the recipe's checksum")

    def untouched_since(self, groups: tuple[str, ...], when: float) -> bool:
        """Whether no input file of `groups` (nor the folder that would hold an absent one) has changed since
        `when` (epoch seconds), judged by ctime, which a copy, a move or an edit all update. The stage engine
        asks this before it adopts a store folder made before file identities were in the fingerprints."""
        for f in self.files:
            if not set(f.groups) & set(groups):
                continue
            local = find_local(f.rel, self.paths)
            if local is not None:
                entries = [local, *(_tree_files(local) if local.is_dir() else [])]
            else:  # absent: nothing may have been added where it would be
                entries = [_nearest_existing(r, f.rel) for r in (self.paths.mirror, self.paths.data_dir)
                           if r is not None]
            for p in entries:
                if p is not None and os.stat(p).st_ctime >= when:
                    return False
        return True


def _nearest_existing(root: Path, rel: str) -> Path | None:
    """The deepest existing folder on the way from `root` to `root / rel` (None when `root` itself is missing)."""
    found = None
    node = root
    for part in ("", *Path(rel).parts[:-1]):
        node = node / part if part else node
        if not node.is_dir():
            break
        found = node
    return found
