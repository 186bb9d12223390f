"""Export what a run trained as a bundle (bundle.py): one task's classifiers, or the run's language models.

    ulmfit-multi export work/runs/mr-cpu --task mahasent-gt --seed 0 --out mahasent-gt.zip
    ulmfit-multi export work/runs/mr-cpu --lm --out mr-lm.zip                       # the pretrained LMs
    ulmfit-multi export work/runs/mr-cpu --lm --fine-tuned mahasent-gt --out gt-lm  # fine-tuned on a task

A classifier bundle is what `Predictor.load` / `ulmfit-multi predict BUNDLE` use; an LM bundle is what a recipe
starts from with `pretrain.from` (pretrained.py). Both carry the tokenizer and how texts were made into ids
(the encode stage's task.json: language, normalization, document boundary), so prediction and fine-tuning on
another machine prepare text exactly as the run did.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import read_json, sha256_file
from .bundle import building, bundle_checksum, finish_bundle
from .config import Config
from .errors import StageError
from .langs import load_lang
from . import remote_files
from .modelcard import classifier_card, lm_card
from .runfolder import RunFolder
from .remote_files import is_object_uri
from .schema import as_data, to_toml

TOKENIZER_FILES = ("spm.model", "spm.vocab", "tokenizer.json")


@dataclass
class Exported:
    """A written bundle: where it is, its sha256 (`pretrain.from.sha256`) and its kind."""

    path: Path | str  # a str: the object-storage URI it was uploaded to
    sha256: str
    kind: str


def export_classifier(run_dir: str | Path, out: str | Path, *, task: str | None = None,
                      seed: int | None = None, shown_as: str | None = None) -> Exported:
    """Bundle one task's forward and backward classifiers of one seed (default: the run's first task and seed).
    `out` may be an object-storage URI (`s3://bucket/models/gt.zip`): built locally, then uploaded. `shown_as`:
    the `--out` the manifest's export command names (default: `out`)."""
    if is_object_uri(out):
        return _export_to_uri(export_classifier, run_dir, str(out), task=task, seed=seed)
    run, out = RunFolder(run_dir), Path(out)
    cfg = run.config()
    task = task or (cfg.tasks[0].name if cfg.tasks else None)
    spec = next((t for t in cfg.tasks if t.name == task), None)
    if spec is None:
        raise StageError(f"{run.path}: no task {task!r}; tasks are {[t.name for t in cfg.tasks]}")
    seed = cfg.evaluate.seeds[0] if seed is None else seed
    if seed not in cfg.evaluate.seeds:
        raise StageError(f"{run.path}: no seed {seed}; the run trained seeds {cfg.evaluate.seeds}")
    task_dir = run.stage_dir("encode") / "tasks" / task
    if not (task_dir / "task.json").exists():
        raise StageError(f"{run.path}: task {task!r} was not encoded (its train split is unavailable?)")
    meta = read_json(task_dir / "task.json")
    weights = {d: run.stage_dir("classifier") / task / d / f"seed{seed}" / "model.pt" for d in cfg.pretrain.directions}
    for path in weights.values():
        if not path.exists():
            raise StageError(f"{path}: no trained classifier (run the recipe's classifier stage)")
    with building(out) as staging:
        text = _common_files(run, cfg, staging, meta.get("lang", spec.lang), meta.get("normalization", "legacy"),
                             meta.get("doc_boundary", "none"))
        for d, path in weights.items():
            (staging / d).mkdir()
            shutil.copy2(path, staging / d / "model.pt")
        records = [r for r in (run.records("evaluate") or []) + (run.records("baselines") or []) if r["task"] == task]
        with open(staging / "scores.jsonl", "w", encoding="utf-8") as f:
            f.writelines(_json_line(r) for r in records)
        manifest = {
            **_header(run, cfg, "classifier", f"{cfg.recipe.name}-{task}-seed{seed}"),
            "task": {"name": task, "metric": meta.get("metric", spec.metric), "classes": meta["classes"],
                     "labels": spec.labels, "note": spec.note, "seed": seed},
            "text": text,
            **_model(cfg, run, task_dir),
            "classifier": {"drop_mult": cfg.classifier.drop_mult, "max_len": cfg.classifier.max_len},
            "scores": {"records": records, "evaluated": run.records("evaluate") is not None,
                       "references": [as_data(r) for r in cfg.reference if r.task == task]},
            "data": _task_data(cfg, spec, meta),
            "lm": _lm_provenance(run),
            "commands": _commands(run, cfg, f"--task {shlex.quote(task)} --seed {seed}", shown_as or out),
        }
        (staging / "MODEL.md").write_text(classifier_card(manifest), encoding="utf-8")
        finish_bundle(staging, out, manifest)
    return Exported(out, bundle_checksum(out), "classifier")


def export_lm(run_dir: str | Path, out: str | Path, *, fine_tuned: str | None = None,
              shown_as: str | None = None) -> Exported:
    """Bundle the run's forward and backward language models: pretrained, or fine-tuned on task `fine_tuned`."""
    if is_object_uri(out):
        return _export_to_uri(export_lm, run_dir, str(out), fine_tuned=fine_tuned)
    run, out = RunFolder(run_dir), Path(out)
    cfg = run.config()
    if fine_tuned is not None and fine_tuned not in [t.name for t in cfg.tasks]:
        raise StageError(f"{run.path}: no task {fine_tuned!r}; tasks are {[t.name for t in cfg.tasks]}")
    stage = "pretrain" if fine_tuned is None else "finetune_lm"
    root = run.stage_dir(stage) / (fine_tuned or "")
    weights = {d: root / d / "model.pt" for d in cfg.pretrain.directions}
    for path in weights.values():
        if not path.exists():
            raise StageError(f"{path}: no trained language model (run the recipe's {stage} stage)")
    with building(out) as staging:
        text = _common_files(run, cfg, staging, cfg.recipe.langs[0], cfg.corpus.normalization, cfg.encode.doc_boundary)
        results = {}
        for d, path in weights.items():
            (staging / d).mkdir()
            shutil.copy2(path, staging / d / "model.pt")
            done = path.parent / "done.json"
            results[d] = read_json(done) if done.exists() else {}
        name = f"{cfg.recipe.name}-{cfg.preset}-lm" + (f"-{fine_tuned}" if fine_tuned else "")
        flag = "--lm" + (f" --fine-tuned {shlex.quote(fine_tuned)}" if fine_tuned else "")
        manifest = {
            **_header(run, cfg, "lm", name),
            "text": text,
            **_model(cfg, run, None),
            "lm": {**_lm_provenance(run), "stage": stage, "fine_tuned_on": fine_tuned, "results": results},
            "commands": _commands(run, cfg, flag, shown_as or out),
        }
        (staging / "MODEL.md").write_text(lm_card(manifest), encoding="utf-8")
        finish_bundle(staging, out, manifest)
    return Exported(out, bundle_checksum(out), "lm")


def _export_to_uri(export: Any, run_dir: str | Path, uri: str, **kw: Any) -> Exported:
    """Build the bundle in a temporary folder under the URI's last name, upload it, return it as at the URI."""
    with tempfile.TemporaryDirectory(prefix="ulmfit-export-") as tmp:
        local = export(run_dir, Path(tmp) / uri.rstrip("/").rsplit("/", 1)[-1], shown_as=uri, **kw)
        remote_files.put(Path(local.path), uri)
    return Exported(uri, local.sha256, local.kind)


def _json_line(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def _common_files(run: RunFolder, cfg: Config, staging: Path, lang: str, normalization: str,
                  doc_boundary: str) -> dict[str, Any]:
    """Tokenizer, resolved config and language spec into `staging`; returns the manifest's `text` entry."""
    tok_dir = run.stage_dir("tokenizer")
    (staging / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        if (tok_dir / name).exists():
            shutil.copy2(tok_dir / name, staging / "tokenizer" / name)
    shutil.copy2(run.path / "config.resolved.toml", staging / "config.resolved.toml")
    spec = load_lang(lang)
    (staging / "lang.toml").write_text(f"# the language spec this bundle's texts were normalized with\n"
                                       f"{to_toml(dataclasses.asdict(spec))}", encoding="utf-8")
    return {"lang": spec.code, "lang_name": spec.name, "scripts": spec.scripts, "normalizer": spec.normalizer,
            "normalization": normalization, "doc_boundary": doc_boundary,
            "tokenizer_sha256": sha256_file(tok_dir / "spm.model")}


def _header(run: RunFolder, cfg: Config, kind: str, name: str) -> dict[str, Any]:
    from .envinfo import environment

    return {"kind": kind, "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "made_from": {"run": str(run.path), "recipe": cfg.recipe.name, "description": cfg.recipe.description,
                          "preset": cfg.preset, "overrides": cfg.overrides, "source_file": cfg.source_file},
            "code": {**environment(), "trained_with": run.environment()}}


def _model(cfg: Config, run: RunFolder, task_dir: Path | None) -> dict[str, Any]:
    if task_dir is not None:
        vocab = int(read_json(task_dir / "train" / "meta.json")["vocab_size"])
    else:
        vocab = int(read_json(run.stage_dir("tokenizer") / "tokenizer.json").get("vocab_size", 0)) or _spm_vocab(run)
    return {"model": as_data(cfg.model), "directions": list(cfg.pretrain.directions), "vocab_size": vocab}


def _spm_vocab(run: RunFolder) -> int:
    from .tokenizer import Tokenizer

    return Tokenizer.load(run.stage_dir("tokenizer")).vocab_size


def _task_data(cfg: Config, spec: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Each split's file (as the recipe names it), rows used, and sha256 (the recipe's, or of the file read)."""
    splits = {}
    for role, rel in spec.splits.items():
        info = meta.get("splits", {}).get(role, {})
        path = Path(info["path"]) if info.get("path") else None
        digest = cfg.data.sha256.get(rel) or (sha256_file(path) if path is not None and path.is_file() else "")
        splits[role] = {"file": rel, "rows": info.get("n"), "sha256": digest,
                        "unavailable": meta.get("unavailable", {}).get(role, "")}
    return {"splits": splits, "max_task_rows": cfg.data.max_task_rows}


def _lm_provenance(run: RunFolder) -> dict[str, Any]:
    """What the language model was pretrained on: the corpus and encode stages' summaries, shortened."""
    corpus = run.stage_summary("corpus")
    if corpus.get("from_bundle"):  # the run started from an LM bundle: what that bundle was trained on
        return {"corpus": corpus.get("bundle_corpus", {}), "from_bundle": corpus["from_bundle"], "tokens": None}
    langs = {k: {"documents": v.get("documents"), "sentences": v.get("sentences"),
                 "sources": {n: {"path": s.get("path"), "documents": s.get("documents")}
                             for n, s in v.get("sources", {}).items()}}
             for k, v in corpus.items() if isinstance(v, dict) and "documents" in v}
    lm = run.stage_summary("encode").get("lm", {})
    return {"corpus": langs, "from_bundle": corpus.get("from_bundle"),
            "tokens": lm.get("tokens") if isinstance(lm, dict) else None}


def _commands(run: RunFolder, cfg: Config, export_args: str, out: Path | str) -> dict[str, str]:
    """The command that made the run (as run.json recorded it, else rebuilt from the config) and the export."""
    inv = run.run_json().get("invocation") or {}
    parts = ["ulmfit-multi", "recipe", str(inv.get("recipe") or cfg.recipe.name), "--preset", cfg.preset]
    for item in inv.get("overrides") or cfg.overrides:
        parts += ["--set", item]
    if inv.get("mirror"):
        parts += ["--mirror", str(inv["mirror"])]
    return {"run": shlex.join(parts),
            "export": f"ulmfit-multi export {shlex.quote(str(run.path))} {export_args} --out {shlex.quote(str(out))}"}
