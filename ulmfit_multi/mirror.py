"""A read-only mirror at an object-storage URI (`--mirror s3://bucket/mirror`), read through a node-local copy.

Everything that reads the mirror (fetch, the input identities, the offline-copy decision) reads a local folder
laid out like `../shared/data`. With a URI as the mirror, that folder is a cache
(`$ULMFIT_MULTI_MIRROR_CACHE`, else `~/.cache/ulmfit_multi/mirror/<protocol>/<bucket>/<prefix>`), and
`sync_mirror` fills it before anything reads it: every file or folder the recipe names (corpus sources and their
offline copies, task splits, `pretrain.from` under `lm-bundles/`) that the remote mirror has and the cache
lacks is downloaded once (a file to a temp name, then renamed; a folder into a temp folder, then renamed), so a
cut download never looks like a mirror copy. What the remote mirror lacks is left to the data root and the URLs,
as with a local mirror.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import remote_files
from .config import Config
from .paths import Paths

log = logging.getLogger("ulmfit_multi")


def mirror_rels(cfg: Config) -> list[str]:
    """Every path under the mirror the recipe may read: sources (and their offline copies), task splits, the
    pretrain.from bundle's `lm-bundles/<name>`."""
    rels = []
    for src in cfg.corpus.sources:
        rels += [src.path, src.offline]
    rels += [rel for task in cfg.tasks for rel in task.splits.values()]
    bundle = cfg.pretrain.from_.path or cfg.pretrain.from_.url
    if bundle:
        rels.append(f"lm-bundles/{Path(bundle.split('?')[0]).name}")
    return list(dict.fromkeys(r for r in rels if r and not Path(r).is_absolute()))


def sync_mirror(cfg: Config, paths: Paths) -> list[str]:
    """Download into the local mirror copy what the recipe names and the remote mirror has; returns those rels."""
    if not paths.mirror_remote or paths.mirror is None:
        return []
    fetched = []
    for rel in mirror_rels(cfg):
        if (paths.mirror / rel).exists():
            continue
        try:  # a temp name, then renamed
            remote_files.get(f"{paths.mirror_remote}/{rel}", paths.mirror / rel)
        except FileNotFoundError:  # not in the remote mirror: the data root and the URL, as with a local one
            continue
        fetched.append(rel)
        log.info("mirror: %s from %s", rel, paths.mirror_remote)
    return fetched
