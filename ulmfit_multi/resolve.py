"""What a recipe reads, decided before the stages run, so that the stage fingerprints say what was read.

`resolve_inputs(cfg, paths)` (run_recipe and `ulmfit-multi status` call it) settles two things in the loaded
config, and records each decision in `cfg.runtime.source_choice` (which no fingerprint reads):

* A corpus source with an `offline` copy (a full Wikipedia dump, with the mirror's sample of it as the copy):
  the full source when it is in the mirror or the data root; else the offline copy when that is; else the
  choice recorded in the run folder's config.resolved.toml (a machine with neither, e.g. running `--only` a
  later stage on copied work); else the full source, which fetch downloads. The stages then see one plain
  source: the offline copy exactly as `{name, format, path = <copy>}` (so an offline run keeps the fingerprints
  it had before sources had copies), or the full source capped at `corpus.max_dump_docs` documents.
* `pretrain.from`, a pretrained-LM bundle: found (its path; else the mirror or data root under
  `lm-bundles/<file name>`; else downloaded from its url), its checksum checked (or computed), its manifest
  checked against the recipe (kind, format version, model sizes, normalization, directions). The corpus
  sources are then replaced by one source of format "lm-bundle" and the bundle's checksum goes into
  `data.sha256`, so fetch finds it like any file and every stage from fetch on has it in its fingerprint.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
import urllib.parse
from pathlib import Path

from .config import Config, Source
from .errors import RecipeError
from .paths import Paths

log = logging.getLogger("ulmfit_multi")
BUNDLE_FORMAT, BUNDLE_SOURCE = "lm-bundle", "pretrained-lm"


def resolve_inputs(cfg: Config, paths: Paths, *, download: bool = True) -> Config:
    """Apply both decisions to `cfg` (in place; returns it). `download`: fetch a bundle given only by url now
    (False for `status`, which downloads nothing)."""
    resolve_sources(cfg, paths)
    resolve_pretrained(cfg, paths, download=download)
    return cfg


def _local(rel: str, paths: Paths) -> Path | None:
    for root in (paths.mirror, paths.data_dir):
        if root is not None and (root / rel).exists():
            return root / rel
    return None


def _recorded_paths(cfg: Config, paths: Paths) -> dict[str, str]:
    """Source name -> path in the run folder's config.resolved.toml ({} without one)."""
    from .stages import run_dir_for

    resolved = run_dir_for(paths, cfg) / "config.resolved.toml"
    try:
        data = tomllib.loads(resolved.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {s.get("name", ""): s.get("path", "") for s in data.get("corpus", {}).get("sources", [])}


def resolve_sources(cfg: Config, paths: Paths) -> None:
    """Each source with an `offline` copy becomes its full or its offline version (see the module docstring)."""
    recorded: dict[str, str] | None = None
    sources = []
    for src in cfg.corpus.sources:
        if not src.offline:
            sources.append(src)
            continue
        if _local(src.path, paths) is not None:
            use_full, why = True, "found locally"
        elif _local(src.offline, paths) is not None:
            use_full, why = False, f"{src.path} is in neither the mirror nor the data root"
        else:
            recorded = _recorded_paths(cfg, paths) if recorded is None else recorded
            use_full = recorded.get(src.name) != src.offline
            why = "as the run folder recorded" if src.name in recorded else "to be downloaded"
        if use_full:
            sources.append(dataclasses.replace(src, offline="", max_docs=src.max_docs or cfg.corpus.max_dump_docs))
            cap = f", first {cfg.corpus.max_dump_docs} documents" if cfg.corpus.max_dump_docs and not src.max_docs else ""
            cfg.runtime.source_choice[src.name] = f"full: {src.path} ({why}{cap})"
        else:
            sources.append(dataclasses.replace(src, path=src.offline, url="", offline=""))
            cfg.runtime.source_choice[src.name] = f"offline copy: {src.offline} ({why})"
        log.debug("corpus source %s: %s", src.name, cfg.runtime.source_choice[src.name])
    cfg.corpus.sources = sources
    cfg.corpus.max_dump_docs = 0  # applied: it is now each full source's `max_docs`


def uses_bundle(cfg: Config) -> bool:
    """Whether the (resolved) recipe starts from a pretrained-LM bundle."""
    return any(s.format == BUNDLE_FORMAT for s in cfg.corpus.sources)


def bundle_source(cfg: Config) -> Source:
    """The resolved recipe's LM-bundle source."""
    return next(s for s in cfg.corpus.sources if s.format == BUNDLE_FORMAT)


def resolve_pretrained(cfg: Config, paths: Paths, *, download: bool = True) -> None:
    """Replace the corpus sources by the `pretrain.from` bundle, checked (see the module docstring)."""
    from .bundle import bundle_checksum, read_manifest
    from .fetch import locate

    f = cfg.pretrain.from_
    if not f.given or uses_bundle(cfg):
        return
    where = f"{cfg.source_file}: pretrain.from"
    if f.path and Path(f.path).exists():
        rel, local = f.path, Path(f.path)
    else:
        name = Path(urllib.parse.urlparse(f.url).path).name or "lm-bundle.zip"
        rel = f"lm-bundles/{name}"
        local = _local(rel, paths)
        if local is None and download:
            local = locate(rel, data_dir=paths.data_dir, mirror=paths.mirror, url=f.url, sha256=f.sha256,
                           progress=cfg.runtime.progress)
    sha = f.sha256
    if local is not None:
        got = bundle_checksum(local)
        if sha and got != sha:
            raise RecipeError(f"{where}: {local} has sha256 {got}, not the recipe's {sha}")
        sha = got
        check_bundle(cfg, read_manifest(local), f"{where} ({local})")
    cfg.corpus.sources = [Source(name=BUNDLE_SOURCE, format=BUNDLE_FORMAT, path=rel, url=f.url,
                                 lang=cfg.recipe.langs[0])]
    if sha:  # a folder's checksum is its CHECKSUMS.sha256's
        cfg.data.sha256[rel if local is None or local.is_file() else f"{rel}/CHECKSUMS.sha256"] = sha
    cfg.runtime.source_choice[BUNDLE_SOURCE] = f"LM bundle {local or f.url} (sha256 {sha[:12] or 'not known yet'})"


def check_bundle(cfg: Config, manifest: dict, where: str) -> None:
    """The bundle must be language models of the recipe's sizes, directions and normalization."""
    if manifest.get("kind") != "lm":
        raise RecipeError(f"{where}: a {manifest.get('kind')!r} bundle; pretrain.from needs language models "
                          "(ulmfit-multi export RUN --lm)")
    sizes = {k: manifest["model"][k] for k in ("emb_size", "hidden_size", "n_layers")}
    differ = {k: v for k, v in sizes.items() if getattr(cfg.model, k) != v}
    if differ:
        have = ", ".join(f"model.{k} = {getattr(cfg.model, k)}" for k in differ)
        want = " ".join(f"--set model.{k}={v}" for k, v in differ.items())
        raise RecipeError(f"{where}: the bundle's language models have {', '.join(f'{k} {v}' for k, v in sizes.items())}"
                          f"; the recipe has {have}: set the bundle's sizes in the recipe ({want})")
    missing = [d for d in cfg.pretrain.directions if d not in manifest.get("directions", [])]
    if missing:
        raise RecipeError(f"{where}: the bundle has no {', '.join(missing)} language model "
                          f"(it has {', '.join(manifest.get('directions', []))}); set pretrain.directions")
    norm = manifest["text"]["normalization"]
    if norm != cfg.corpus.normalization:
        raise RecipeError(f"{where}: the bundle's texts were normalized with corpus.normalization = {norm!r}; the "
                          f"recipe has {cfg.corpus.normalization!r}: set it to {norm!r}")
    if manifest["text"]["lang"] not in cfg.recipe.langs:
        log.warning("%s: the bundle's language is %s, the recipe's %s", where, manifest["text"]["lang"],
                    ", ".join(cfg.recipe.langs))
