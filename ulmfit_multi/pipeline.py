"""The ULMFiT recipe: ordered stages, one short function each.

    fetch -> corpus -> tokenizer -> encode -> baselines -> pretrain
          -> finetune_lm -> classifier -> evaluate -> table -> curves (label budgets; only with curves.budgets)

Each function reads its config section and its inputs' directories from the
StageContext and writes only into `ctx.out`. Long stages keep per-item
results (one LM direction, one task x direction x seed classifier) in their
own sub-folders with a `done.json`, so a resumed stage redoes only what was
unfinished, and training resumes from its last checkpoint.

Usage (Python):
    from ulmfit_multi import run_recipe
    run_recipe("mr", preset="smoke", mirror="../shared/data")
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import read_json, write_json
from .builders import device_for
from .config import Config, load_recipe
from .corpus.tasks import load_tasks, write_task_text
from .errors import DataError, FetchError
from .evaluate import compute_metrics, metric_fn
from .fetch import fetch_still_valid, locate, locate_source, url_for
from .langs import load_lang
from .paths import ENV_DATA, ENV_MIRROR, ENV_WORK, Paths
from .mirror import sync_mirror
from .resolve import resolve_inputs, uses_bundle
from .runfolder import command_line, make_record, override_items, read_records, recorded_invocation, write_records
from .stages import RunResult, Stage, StageContext, run_stages

log = logging.getLogger("ulmfit_multi")


def _fetched(ctx: StageContext) -> dict[str, dict[str, Any]]:
    return read_json(ctx.input("fetch") / "fetched.json")


def _task_dirs(ctx: StageContext) -> dict[str, Path]:
    root = ctx.input("encode") / "tasks"
    return {t.name: root / t.name for t in ctx.cfg.tasks if (root / t.name / "train").exists()}


def _epoch_events(ctx: StageContext, **ids: Any):
    """An `on_epoch` hook that reports each finished epoch as a stage event (what Ray's progress board reads)."""
    return lambda rec: ctx.emit({"event": "epoch", **ids, **rec})


def lm_text_files(corpus_dir: Path) -> list[Path]:
    """Every text shard of a built corpus (all languages, synthetic and task text), in a fixed order."""
    return sorted(p for p in corpus_dir.rglob("*.txt") if not p.name.startswith("."))


# ------------------------------------------------------------------ stages


def fetch(ctx: StageContext) -> dict[str, Any]:
    """Find every input file in the mirror or the data root, or download it (resumable, sha256-checked),
    and check the task files (`check.check_tasks`) before anything else is done with them."""
    from .check import check_findings, check_tasks
    from .inputs import hash_cache

    cfg, paths = ctx.cfg, ctx.paths
    cache = hash_cache(paths)
    remotes = [(r.prefix, r.url) for r in cfg.data.remotes]
    fetched: dict[str, dict[str, Any]] = {}
    # the task files first: they are small, and a bad one fails the run before a dump is downloaded
    for task in cfg.tasks:
        for role, rel in task.splits.items():
            url = url_for(rel, remotes)
            try:
                path = locate(rel, data_dir=paths.data_dir, mirror=paths.mirror, url=url,
                              sha256=cfg.data.sha256.get(rel, ""), progress=ctx.progress, sha256_of=cache.sha256)
                fetched[rel] = {"path": str(path), "role": f"{task.name}:{role}"}
            except FetchError as e:  # a missing task split is reported as unavailable, not fatal
                log.warning("%s", e)
                fetched[rel] = {"path": None, "role": f"{task.name}:{role}", "reason": str(e), "url": url}
    report = check_tasks(cfg, fetched)
    write_json(ctx.out / "check.json", report)
    for line in check_findings(report):
        log.warning("check: %s", line)
    for src in cfg.corpus.sources:
        url = src.url or url_for(src.path, remotes)
        try:
            path = locate_source(src.path, url, data_dir=paths.data_dir, mirror=paths.mirror,
                                 sha256=cfg.data.sha256.get(src.path, ""), progress=ctx.progress,
                                 sha256_of=cache.sha256)
            fetched[src.path] = {"path": str(path), "role": f"corpus:{src.name}"}
        except FetchError as e:
            if not src.optional:
                raise
            fetched[src.path] = {"path": None, "role": f"corpus:{src.name}", "reason": str(e), "url": url}
    cache.save()
    write_json(ctx.out / "fetched.json", fetched)
    missing = sorted(k for k, v in fetched.items() if not v["path"])
    return {"files": len(fetched), "unavailable": missing}


def corpus(ctx: StageContext) -> dict[str, Any]:
    """Turn dumps and raw text into clean, normalized, language-filtered sentences."""
    from .config import Source
    from .corpus.build import build_corpus

    cfg, c = ctx.cfg, ctx.cfg.corpus
    if uses_bundle(cfg):  # pretrain.from: the bundle's LMs need no corpus (pretrained.py)
        from .pretrained import corpus_from_bundle

        return corpus_from_bundle(ctx)
    fetched = _fetched(ctx)
    # which version of each source with an offline copy was read (resolve.py), when there is one
    summary: dict[str, Any] = {"sources_used": dict(cfg.runtime.source_choice)} if cfg.runtime.source_choice else {}
    by_lang: dict[str, list[tuple[Source, Path]]] = {}
    for src in c.sources:
        path = fetched.get(src.path, {}).get("path")
        if path:
            by_lang.setdefault(src.lang, []).append((src, Path(path)))
    for code, specs in by_lang.items():
        lang = load_lang(code)
        summary[code] = build_corpus(
            specs, ctx.out / code, lang=lang.lid_code, normalizer_lang=lang.normalizer or None, lid=c.lid,
            lid_threshold=c.lid_threshold, lid_accept=tuple(lang.lid_accept), min_chars=c.min_chars, dedupe=c.dedupe,
            max_docs_per_source=c.max_docs_per_source, keep_truncated=c.keep_truncated,
            social=c.normalization == "shared", workers=cfg.runtime.workers, progress=ctx.progress)
    if c.synthetic.enabled:
        from .corpus.synthetic import synthesize_files

        native = sorted((ctx.out / cfg.recipe.langs[0]).glob("*.txt"))
        summary["synthetic"] = synthesize_files(
            native, ctx.out / "synthetic" / "synthetic-00000.txt", cfg.recipe.langs[0], c.synthetic)
    if c.task_text:
        tasks = load_tasks(cfg, fetched)
        n, dropped = write_task_text(tasks, ("train", "valid", "unlabeled"), ctx.out / "task" / "task-00000.txt")
        summary["task_text_docs"] = n
        summary["task_text_dropped_test_overlap"] = dropped
    if not lm_text_files(ctx.out):
        raise DataError(f"corpus for recipe '{cfg.recipe.name}': no text at all (no source was available)")
    return summary


def tokenizer(ctx: StageContext) -> dict[str, Any]:
    """Train the SentencePiece model on the corpus (and the tasks' train text)."""
    from .corpus.social import MARKERS
    from .tokenizer import train_tokenizer

    t = ctx.cfg.tokenizer
    if uses_bundle(ctx.cfg):  # pretrain.from: the bundle's tokenizer
        from .pretrained import tokenizer_from_bundle

        return tokenizer_from_bundle(ctx)
    corpus_dir = ctx.input("corpus")
    inputs = [(p, t.weights.get(p.relative_to(corpus_dir).parts[0], 1.0)) for p in lm_text_files(corpus_dir)]
    if t.task_text and ctx.cfg.tasks:
        tasks = load_tasks(ctx.cfg, read_json(ctx.input("fetch") / "fetched.json"))
        extra = ctx.out / "task-train.txt.in"
        if write_task_text(tasks, ("train",), extra)[0]:
            inputs.append((extra, t.weights.get("task", 1.0)))
    model = train_tokenizer(inputs, ctx.out, vocab_size=t.vocab_size, model_type=t.model_type,
                            character_coverage=t.character_coverage, max_sentences=t.max_sentences,
                            seed=t.seed, user_defined_symbols=MARKERS, hard_vocab_limit=False)
    return {"model": str(model), **{k: v for k, v in read_json(ctx.out / "tokenizer.json").items()
                                     if k in ("vocab_size", "sentences", "model_type")}}


def encode(ctx: StageContext) -> dict[str, Any]:
    """Encode the LM corpus into a memory-mapped token file, and every task split into token ids."""
    from .tokenizer import Tokenizer, encode_corpus
    from .tokens import write_token_store

    tok_dir = ctx.input("tokenizer")
    tok = Tokenizer.load(tok_dir)
    if uses_bundle(ctx.cfg):  # pretrain.from: no corpus to encode
        from .pretrained import empty_lm_store

        summary: dict[str, Any] = {"lm": empty_lm_store(ctx.out / "lm", tok)}
    else:
        summary = {"lm": encode_corpus(tok_dir, lm_text_files(ctx.input("corpus")), ctx.out / "lm",
                                       workers=ctx.cfg.runtime.workers, progress=ctx.progress)}
    tasks = load_tasks(ctx.cfg, _fetched(ctx))
    for name, data in tasks.items():
        tdir = ctx.out / "tasks" / name
        for role, split in data.splits.items():
            texts = data.prepared(role)
            docs = tok.encode_documents(texts, boundary=ctx.cfg.encode.doc_boundary)
            write_token_store(docs, tdir / role, vocab_size=tok.vocab_size, meta={"tokenizer_sha256": tok.checksum})
            write_json(tdir / role / "texts.json", texts)  # for subword-regularization sampling
            np.save(tdir / role / "labels.npy", np.asarray(split.labels, dtype=np.int64))
        write_json(tdir / "task.json", {
            "classes": list(data.classes), "unavailable": data.unavailable, "metric": data.spec.metric,
            # n: rows encoded; read: usable rows in the file (more than n when data.max_task_rows sampled them)
            "splits": {r: {"n": len(s.texts), "read": s.rows_read, "skipped": s.skipped,
                           "skipped_lines": s.skipped_lines, "path": str(s.path)} for r, s in data.splits.items()},
            "note": data.spec.note,
            # how the texts were made into ids, for prediction (runs from before these keys: "legacy", "none")
            "lang": data.spec.lang, "normalization": data.normalization, "doc_boundary": ctx.cfg.encode.doc_boundary,
        })
        summary[name] = {r: len(s.texts) for r, s in data.splits.items()}
    return summary


def pretrain(ctx: StageContext) -> dict[str, Any]:
    """Pretrain forward and backward AWD-LSTM language models on the general-domain corpus.

    With pretrain.workers > 1 each direction trains data-parallel on Ray Train (`ddp.run_data_parallel`).
    """
    from .jobs import pretrain_direction

    cfg, p = ctx.cfg, ctx.cfg.pretrain
    if uses_bundle(cfg):  # pretrain.from: the bundle's weights
        from .pretrained import pretrain_from_bundle

        return pretrain_from_bundle(ctx)
    summary = {}
    for direction in p.directions:
        out = ctx.out / direction
        if (out / "done.json").exists():
            summary[direction] = read_json(out / "done.json")
            continue
        job = dict(cfg=cfg, encode_dir=str(ctx.input("encode")), direction=direction, out=str(out),
                   on_checkpoint=ctx.on_checkpoint)
        if p.workers > 1:
            from .ddp import pretrain_worker, run_data_parallel

            use_gpu = {"cuda": True, "cpu": False}.get(cfg.runtime.device)  # auto: if the cluster has GPUs
            run_data_parallel(pretrain_worker, job, num_workers=p.workers, use_gpu=use_gpu,
                              storage_path=ctx.remote_dir("ray_train") or ctx.out / "ray_train")
            result = read_json(out / "result.json")
        else:
            result = pretrain_direction(**job, device=device_for(cfg), progress=ctx.progress,
                                        on_epoch=_epoch_events(ctx, direction=direction))
        write_json(out / "done.json", result)
        summary[direction] = result
    shutil.rmtree(ctx.out / "ray_train", ignore_errors=True)
    return summary


def finetune_lm(ctx: StageContext) -> dict[str, Any]:
    """Fine-tune each LM direction on each task's own text (train, valid, unlabeled; never test)."""
    from .jobs import finetune_direction
    from .tokens import TokenStore, check_same_tokenizer

    cfg = ctx.cfg
    lm_meta = TokenStore.open(ctx.input("encode") / "lm").meta
    summary: dict[str, Any] = {}
    for name, tdir in _task_dirs(ctx).items():
        stores = {role: TokenStore.open(tdir / role) for role in ("train", "valid", "unlabeled")
                  if (tdir / role).exists()}
        check_same_tokenizer(lm_meta, stores["train"].meta, tdir / "train")
        tokens = np.concatenate([np.asarray(s.tokens) for s in stores.values()])
        starts = np.cumsum([0] + [len(s.tokens) for s in stores.values()])
        offsets = np.unique(np.concatenate([s.offsets + start for s, start in zip(stores.values(), starts)]))
        for direction in cfg.pretrain.directions:
            out = ctx.out / name / direction
            if not (out / "done.json").exists():
                result = finetune_direction(cfg, tokens, int(stores["train"].meta["vocab_size"]),
                                            ctx.input("pretrain") / direction / "model.pt", direction, out,
                                            device=device_for(cfg), progress=ctx.progress,
                                            on_epoch=_epoch_events(ctx, task=name, direction=direction),
                                            doc_offsets=offsets, on_checkpoint=ctx.on_checkpoint)
                write_json(out / "done.json", result)
            summary[f"{name}/{direction}"] = read_json(out / "done.json")
    return summary


def classifier(ctx: StageContext) -> dict[str, Any]:
    """Train ULMFiT classifiers (gradual unfreezing, discriminative LRs, STLR) per task, direction and seed."""
    from .jobs import train_one_classifier

    cfg = ctx.cfg
    summary: dict[str, Any] = {}
    for name, tdir in _task_dirs(ctx).items():
        task_meta = read_json(tdir / "task.json")
        n_classes = len(task_meta["classes"])
        for direction in cfg.pretrain.directions:
            for seed in cfg.evaluate.seeds:
                out = ctx.out / name / direction / f"seed{seed}"
                if not (out / "done.json").exists():
                    result = train_one_classifier(
                        cfg, tdir, ctx.input("encode"), ctx.input("finetune_lm") / name / direction / "model.pt",
                        direction, seed, out, n_classes=n_classes, score=metric_fn(task_meta["metric"], n_classes),
                        device=device_for(cfg), progress=ctx.progress,
                        on_epoch=_epoch_events(ctx, task=name, direction=direction, seed=seed))
                    write_json(out / "done.json", result)
                summary[f"{name}/{direction}/seed{seed}"] = read_json(out / "done.json")
    return summary


def baselines(ctx: StageContext) -> dict[str, Any]:
    """Train the baselines (majority class, TF-IDF + logistic regression, fastText) on the same splits.

    Besides the test records, each trained baseline's class probabilities on the valid (when there is one)
    and test splits go to `probas/<task>/<system>/seed<seed>/proba_{valid,test}.npy`, with the labels they
    were scored against, for the evaluate stage's late fusion (`evaluate.fuse_with`).
    """
    from .baselines import BASELINES

    cfg = ctx.cfg
    tasks = load_tasks(cfg, _fetched(ctx))
    records = []
    for name, data in tasks.items():
        if "train" not in data.splits or "test" not in data.splits:
            continue
        train, test = data.splits["train"], data.splits["test"]
        valid = data.splits.get("valid")
        train_texts, test_texts = data.prepared("train"), data.prepared("test")
        valid_texts = data.prepared("valid") if valid is not None else []
        for system in cfg.evaluate.baselines:
            fn = BASELINES[system]
            seeds = [0] if system == "majority" else cfg.evaluate.seeds
            for seed in seeds:
                if system == "majority":
                    pred = fn(np.asarray(train.labels), len(test_texts))
                else:  # one model scores valid and test together
                    _, proba = fn(train_texts, np.asarray(train.labels), valid_texts + test_texts, seed=seed)
                    pred = proba[len(valid_texts):].argmax(1)
                    out = ctx.out / "probas" / name / system / f"seed{seed}"
                    out.mkdir(parents=True, exist_ok=True)
                    np.save(out / "proba_test.npy", _pad_classes(proba[len(valid_texts):], len(data.classes)))
                    np.save(out / "labels_test.npy", np.asarray(test.labels))
                    if valid is not None:
                        np.save(out / "proba_valid.npy", _pad_classes(proba[:len(valid_texts)], len(data.classes)))
                        np.save(out / "labels_valid.npy", np.asarray(valid.labels))
                records.append(make_record(name, system, seed, compute_metrics(np.asarray(test.labels), pred,
                                                                               len(data.classes)), len(test_texts),
                                           preset=cfg.preset, note=data.spec.note))
    write_records(ctx.out / "records.jsonl", records)
    return {"records": len(records)}


def _pad_classes(proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Class columns up to the task's class count (a class absent from train gets no column from sklearn)."""
    if proba.shape[1] >= n_classes:
        return proba
    return np.pad(proba, ((0, 0), (0, n_classes - proba.shape[1])))


def evaluate(ctx: StageContext) -> dict[str, Any]:
    """Score forward, backward and ensembled classifiers on each task's test split; plots.

    Besides each seed's systems: one ensemble pooling every seed's classifiers (a single row), and with
    `evaluate.fuse_with` each seed's ensemble fused with those baselines (weights in `fusion_weights.json`).
    """
    from .evaluate import confusion, task_system_probas
    from .plots import plot_confusion, plot_learning_curves

    cfg = ctx.cfg
    records, biases, weights = [], {}, {}
    notes = {t.name: t.note for t in cfg.tasks}
    clf_dir = ctx.input("classifier")
    for name, tdir in _task_dirs(ctx).items():
        meta = read_json(tdir / "task.json")
        if not (tdir / "test").exists():
            continue
        y = np.load(tdir / "test" / "labels.npy")
        n_classes = len(meta["classes"])
        score = metric_fn(meta["metric"], n_classes)

        def add(system: str, proba: np.ndarray, seed: int | None) -> None:
            pred = proba.argmax(1)
            records.append(make_record(name, f"ULMFiT {system}", seed, compute_metrics(y, pred, n_classes), len(y),
                                       preset=cfg.preset, note=notes[name]))
            if seed == cfg.evaluate.seeds[0] and system in ("ensemble", "fwd"):
                plot_confusion(confusion(y, pred, n_classes), meta["classes"],
                               ctx.out / "plots" / f"confusion-{name}-{system}.png",
                               title=f"{name}: ULMFiT {system}, seed {seed}")

        by_seed, task_biases, task_weights = task_system_probas(
            cfg, clf_dir / name, tdir, ctx.input("baselines"), score=score, fuse_with=cfg.evaluate.fuse_with)
        biases.update({f"{name}/{k}": b for k, b in task_biases.items()})
        weights.update({f"{name}/{k}": w for k, w in task_weights.items()})
        for seed, probas in by_seed.items():
            for system, proba in probas.items():
                add(system, proba, seed)
        curves = sorted((clf_dir / name).glob(f"*/seed{cfg.evaluate.seeds[0]}/history.jsonl"))
        if curves:
            plot_learning_curves(curves, ctx.out / "plots" / f"learning-{name}.png", title=f"{name} classifier")
    write_records(ctx.out / "records.jsonl", records)
    if biases:
        write_json(ctx.out / "class_bias.json", biases)
    if weights:
        write_json(ctx.out / "fusion_weights.json", weights)
    return {"records": len(records)}


def table(ctx: StageContext) -> dict[str, Any]:
    """Gather results and published references into Markdown, CSV, JSON and LaTeX tables."""
    from .notes import run_notes
    from .envinfo import environment
    from .tables import write_tables

    cfg = ctx.cfg
    records = read_records(ctx.input("evaluate") / "records.jsonl") + read_records(
        ctx.input("baselines") / "records.jsonl")
    references = [{"task": r.task, "system": r.system, "metric": r.metric, "value": r.value, "cite": r.cite}
                  for r in cfg.reference]
    unavailable = {}
    for t in cfg.tasks:
        tj = ctx.input("encode") / "tasks" / t.name / "task.json"
        reasons = read_json(tj)["unavailable"] if tj.exists() else {"train": "task files unavailable"}
        if "test" in reasons or "train" in reasons:
            unavailable[t.name] = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    env = environment()
    invocation = recorded_invocation(ctx.run_dir)
    header = {
        "recipe": cfg.recipe.name, "preset": cfg.preset,
        "command": command_line(invocation) if invocation else " ".join(
            [f"ulmfit-multi recipe {cfg.recipe.name} --preset {cfg.preset}"] + [f"--set {shlex.quote(o)}"
                                                                              for o in cfg.overrides]),
        "code version": f"ulmfit_multi {env['ulmfit_multi']} ({env['git_commit'] or 'no git'})",
        "hardware": f"{env.get('cuda') or 'CPU'}, {env['cpu_count']} cores, {env['platform']}",
        "torch": env.get("torch", ""), "seeds": ", ".join(map(str, cfg.evaluate.seeds)),
    }
    # what was skipped, dropped, truncated or unavailable, from the stages' records (notes.py)
    notes = run_notes(fetch_dir=ctx.input("fetch"), corpus_dir=ctx.input("corpus"), encode_dir=ctx.input("encode"),
                      except_tasks=set(unavailable))
    paths = write_tables(records, references, ctx.out, title=f"{cfg.recipe.name} ({cfg.preset})",
                         metric_by_task={t.name: t.metric for t in cfg.tasks}, header=header,
                         unavailable=unavailable, run_notes=notes, stem="results")
    for plot in (ctx.input("evaluate") / "plots").glob("*.png"):
        (ctx.out / "plots").mkdir(exist_ok=True)
        shutil.copy2(plot, ctx.out / "plots" / plot.name)
    return {"tables": {k: str(v) for k, v in paths.items()}}


def curves(ctx: StageContext) -> dict[str, Any]:
    """Label-efficiency curves: classifiers and baselines trained again on nested subsets of the labels.

    Only with `curves.budgets` (nothing without): per budget, seed and direction a classifier from the one
    fine-tuned LM in `classifiers/<task>/n<k>/<direction>/seed<s>/` (with done.json, so a rerun resumes), the
    whole-split column from the run's evaluate and baselines records; a table and a plot per task (curves.py).
    """
    from .curves import run_curves

    return run_curves(ctx, _task_dirs(ctx))


def _corpus_data(cfg: Config) -> tuple[str, ...]:
    """The corpus reads the sources, and the task files when their text joins the LM corpus."""
    return ("sources", "tasks") if cfg.corpus.task_text else ("sources",)


def _tokenizer_data(cfg: Config) -> tuple[str, ...]:
    """With tokenizer.task_text the tokenizer reads the tasks' train text, less any text equal to a test text."""
    return ("tasks:train", "tasks:test") if cfg.tokenizer.task_text and cfg.tasks else ()


# `data`: the input files a stage reads (inputs.py); a changed, added or removed file reruns those stages and
# the ones after them. fetch only finds the files: the stages after it do not inherit its file identities.
STAGES: list[Stage] = [
    Stage("fetch", fetch, reads=("data", "corpus.sources", "tasks"), still_valid=fetch_still_valid,
          data=("sources", "tasks"), fetches=True),
    Stage("corpus", corpus, reads=("langs", "corpus", "data.max_task_rows"), after=("fetch",), version=2,
          data=_corpus_data),
    Stage("tokenizer", tokenizer, reads=("tokenizer", "data.max_task_rows", "corpus.normalization"),
          after=("fetch", "corpus"), data=_tokenizer_data),
    Stage("encode", encode, reads=("encode", "data.max_task_rows", "tasks", "corpus.normalization"),
          after=("fetch", "corpus", "tokenizer"), data=("tasks",)),
    Stage("baselines", baselines, reads=("evaluate.seeds", "evaluate.baselines", "tasks", "data.max_task_rows",
                                         "corpus.normalization"),
          after=("fetch",), version=3, data=("tasks",)),
    Stage("pretrain", pretrain, reads=("model", "pretrain", "encode"), after=("encode",)),
    Stage("finetune_lm", finetune_lm, reads=("model", "finetune_lm", "pretrain.directions"),
          after=("encode", "pretrain")),
    Stage("classifier", classifier, reads=("model", "classifier", "evaluate.seeds", "pretrain.directions"),
          after=("encode", "finetune_lm")),
    Stage("evaluate", evaluate, reads=("evaluate", "pretrain.directions", "classifier.calibrate"),
          after=("encode", "classifier", "baselines"), version=2),
    Stage("table", table, reads=("reference", "tasks", "evaluate"),
          after=("fetch", "corpus", "encode", "evaluate", "baselines")),
    # last, so that the stages before it keep their numbers (10-table); its own section: budgets change only it
    Stage("curves", curves, reads=("curves", "model", "classifier", "evaluate.seeds", "evaluate.baselines",
                                   "pretrain.directions"),
          after=("encode", "finetune_lm", "classifier", "baselines", "evaluate")),
]
STAGE_NAMES = [s.name for s in STAGES]


def run_recipe(recipe: str | Path, *, preset: str = "smoke", overrides: list[str] | dict | None = None,
               data_dir: str | Path | None = None, mirror: str | Path | None = None,
               work_dir: str | Path | None = None, from_stage: str | None = None, only: str | None = None,
               until: str | None = None, force: bool = False, device: str | None = None,
               progress: bool | None = None, on_event: Callable[[dict], None] | None = None,
               cache_dir: str | Path | None = None) -> RunResult:
    """Load a recipe and run its stages (skipping finished ones); the Python face of `ulmfit-multi recipe`.

    `on_event(event)` gets the engine's stage events and the training stages' per-epoch events (dicts).
    `work_dir` may be an object-storage URI (`s3://bucket/prefix`): the stages then run in the local
    `cache_dir` and are published there (objstore.py).
    """
    from .inputs import InputFiles

    cfg = load_recipe(recipe, preset, overrides)
    if device:
        cfg.runtime.device = device
    if progress is not None:
        cfg.runtime.progress = progress
    paths = Paths.resolve(data_dir, mirror, work_dir, cache_dir)
    sync_mirror(cfg, paths)  # a mirror at a URI: its files this recipe names, into the local copy
    resolve_inputs(cfg, paths)  # a source's full or offline version, the pretrain.from bundle: before fingerprints
    invocation = {
        "recipe": str(recipe), "preset": preset, "overrides": override_items(overrides),
        # as given, or from the environment variable that supplied it
        "mirror": _given(mirror, ENV_MIRROR), "data_dir": _given(data_dir, ENV_DATA),
        "work_dir": _given(work_dir, ENV_WORK), "device": device,
    }
    return run_stages(STAGES, cfg, paths, from_stage=from_stage, only=only, until=until, force=force,
                      on_event=on_event, files=InputFiles(cfg, paths), invocation=invocation)


def _given(value: str | Path | None, env: str) -> str | None:
    return str(value) if value is not None else os.environ.get(env) or None
