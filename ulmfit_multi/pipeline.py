"""The ULMFiT recipe: ordered stages, one short function each.

    fetch -> corpus -> tokenizer -> encode -> baselines -> pretrain
          -> finetune_lm -> classifier -> evaluate -> table

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

import json
import logging
import shlex
import shutil
import tarfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import atomic_write, read_json, write_json
from .config import ClassifierConfig, Config, load_recipe
from .errors import DataError, FetchError, StageError
from .fetch import locate, url_for
from .langs import LangSpec, load_lang
from .paths import Paths
from .stages import RunResult, Stage, StageContext, run_stages

log = logging.getLogger("ulmfit_multi")
DIRECTIONS = ("fwd", "bwd")


# ------------------------------------------------------------------ helpers


def device_for(cfg: Config) -> str:
    """'cuda' when asked for or available (auto), else 'cpu'."""
    import torch

    if cfg.runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.runtime.device


def _main_lang(cfg: Config) -> LangSpec:
    return load_lang(cfg.recipe.langs[0])


def _fetched(ctx: StageContext) -> dict[str, dict[str, Any]]:
    return read_json(ctx.input("fetch") / "fetched.json")


def _resolver(fetched: dict[str, dict[str, Any]]):
    def resolve(rel: str) -> Path | None:
        entry = fetched.get(rel)
        return Path(entry["path"]) if entry and entry.get("path") else None
    return resolve


def prepare_text(text: str) -> str:
    """Normalization applied to every task text, at training and at prediction time."""
    from .corpus.social import normalize_social

    return normalize_social(unicodedata.normalize("NFC", text)).strip()


def load_tasks(cfg: Config, fetched: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Load each task's splits (sub-sampled with a fixed seed when data.max_task_rows > 0)."""
    from .corpus.tasks import TaskSpec, load_task

    out = {}
    for task in cfg.tasks:
        spec = TaskSpec(name=task.name, lang=task.lang, format=task.format, text=task.text, label=task.label,
                        labels=dict(task.labels), splits=dict(task.splits), quoting=task.quoting,
                        on_bad_row=task.on_bad_row, metric=task.metric, note=task.note)
        data = load_task(spec, _resolver(fetched))
        if cfg.data.max_task_rows:
            for split in data.splits.values():
                _subsample(split, cfg.data.max_task_rows)
        out[task.name] = data
    return out


def _subsample(split: Any, n: int) -> None:
    # task files are often sorted by label: a seeded sample, kept in file order, not the first n rows
    if len(split.texts) <= n:
        return
    keep = np.sort(np.random.default_rng(0).choice(len(split.texts), size=n, replace=False))
    split.texts = [split.texts[i] for i in keep]
    split.labels = np.asarray(split.labels)[keep]


# ------------------------------------------------------------------ stages


def fetch(ctx: StageContext) -> dict[str, Any]:
    """Find every input file in the mirror or the data root, or download it (resumable, sha256-checked)."""
    cfg, paths = ctx.cfg, ctx.paths
    remotes = [(r.prefix, r.url) for r in cfg.data.remotes]
    fetched: dict[str, dict[str, Any]] = {}
    for src in cfg.corpus.sources:
        url = src.url or url_for(src.path, remotes)
        try:
            path = _locate_source(src.path, url, cfg, paths)
            fetched[src.path] = {"path": str(path), "role": f"corpus:{src.name}"}
        except FetchError as e:
            if not src.optional:
                raise
            fetched[src.path] = {"path": None, "role": f"corpus:{src.name}", "reason": str(e)}
    for task in cfg.tasks:
        for role, rel in task.splits.items():
            try:
                path = locate(rel, data_dir=paths.data_dir, mirror=paths.mirror, url=url_for(rel, remotes),
                              sha256=cfg.data.sha256.get(rel, ""), progress=ctx.progress)
                fetched[rel] = {"path": str(path), "role": f"{task.name}:{role}"}
            except FetchError as e:  # a missing task split is reported as unavailable, not fatal
                log.warning("%s", e)
                fetched[rel] = {"path": None, "role": f"{task.name}:{role}", "reason": str(e)}
    write_json(ctx.out / "fetched.json", fetched)
    missing = sorted(k for k, v in fetched.items() if not v["path"])
    return {"files": len(fetched), "unavailable": missing}


def _locate_source(rel: str, url: str, cfg: Config, paths: Paths) -> Path:
    """A corpus source: a file, or a folder fetched as a .tar.gz/.zip archive in normal use."""
    if url.endswith((".tar.gz", ".tgz", ".zip")) and not rel.endswith((".tar.gz", ".tgz", ".zip")):
        for root in [paths.mirror, paths.data_dir]:
            if root is not None and (root / rel).is_dir():
                return root / rel
        archive = locate(rel + (".zip" if url.endswith(".zip") else ".tar.gz"), data_dir=paths.data_dir,
                         mirror=None, url=url, sha256=cfg.data.sha256.get(rel, ""), progress=cfg.runtime.progress)
        return _extract(archive, paths.data_dir / rel)
    return locate(rel, data_dir=paths.data_dir, mirror=paths.mirror, url=url,
                  sha256=cfg.data.sha256.get(rel, ""), progress=cfg.runtime.progress)


def _extract(archive: Path, dest: Path) -> Path:
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


def _fetch_still_valid(done: Path) -> bool:
    fetched = read_json(done / "fetched.json")
    return all(Path(v["path"]).exists() for v in fetched.values() if v.get("path"))


def corpus(ctx: StageContext) -> dict[str, Any]:
    """Turn dumps and raw text into clean, normalized, language-filtered sentences."""
    from .corpus.build import SourceSpec, build_corpus

    cfg, c = ctx.cfg, ctx.cfg.corpus
    fetched = _fetched(ctx)
    summary: dict[str, Any] = {}
    by_lang: dict[str, list[SourceSpec]] = {}
    for src in c.sources:
        path = fetched.get(src.path, {}).get("path")
        if path:
            by_lang.setdefault(src.lang, []).append(SourceSpec(Path(path), src.format, src.name))
    for code, specs in by_lang.items():
        lang = load_lang(code)
        summary[code] = build_corpus(
            specs, ctx.out / code, lang=lang.lid_code, normalizer_lang=lang.normalizer or None, lid=c.lid,
            lid_threshold=c.lid_threshold, lid_accept=tuple(lang.lid_accept), min_chars=c.min_chars, dedupe=c.dedupe,
            max_docs_per_source=c.max_docs_per_source, keep_truncated=c.keep_truncated,
            workers=cfg.runtime.workers, progress=ctx.progress)
    if c.synthetic.enabled:
        from .corpus.synthetic import SyntheticConfig, synthesize_files

        s = c.synthetic
        native = sorted((ctx.out / cfg.recipe.langs[0]).glob("*.txt"))
        summary["synthetic"] = synthesize_files(
            native, ctx.out / "synthetic" / "synthetic-00000.txt", cfg.recipe.langs[0],
            SyntheticConfig(romanized_share=s.romanized_share, scheme=s.scheme, english_mix=s.english_mix,
                            token_switch_prob=s.token_switch_prob, seed=0))
    if c.task_text:
        tasks = load_tasks(cfg, fetched)
        n, dropped = _write_task_text(tasks, ("train", "valid", "unlabeled"), ctx.out / "task" / "task-00000.txt")
        summary["task_text_docs"] = n
        summary["task_text_dropped_test_overlap"] = dropped
    if not lm_text_files(ctx.out):
        raise DataError(f"corpus for recipe '{cfg.recipe.name}': no text at all (no source was available)")
    return summary


def _write_task_text(tasks: dict[str, Any], roles: tuple[str, ...], path: Path) -> tuple[int, int]:
    """Task texts in corpus format (one document per comment/review); returns (written, dropped).

    Never a test text: not the test splits, and not any text equal to a test text of any task. Datasets
    share comments across releases (most of FIRE 2020's Tamil test comments are in the FIRE 2021 train
    split), so without this check the LM corpus of a multi-task recipe would hold one task's test set.
    """
    from .overlap import all_test_texts

    test = all_test_texts(tasks)
    n = dropped = 0
    with atomic_write(path) as f:
        for data in tasks.values():
            for role in roles:
                if role in data.splits:
                    for text in data.splits[role].texts:
                        text = prepare_text(text)
                        if text in test:
                            dropped += 1
                        elif text:
                            f.write(text.replace("\n", " ") + "\n\n")
                            n += 1
    return n, dropped


def lm_text_files(corpus_dir: Path) -> list[Path]:
    """Every text shard of a built corpus (all languages, synthetic and task text), in a fixed order."""
    return sorted(p for p in corpus_dir.rglob("*.txt") if not p.name.startswith("."))


def tokenizer(ctx: StageContext) -> dict[str, Any]:
    """Train the SentencePiece model on the corpus (and the tasks' train text)."""
    from .corpus.social import MARKERS
    from .tokenizer import train_tokenizer

    t = ctx.cfg.tokenizer
    corpus_dir = ctx.input("corpus")
    inputs = [(p, t.weights.get(p.relative_to(corpus_dir).parts[0], 1.0)) for p in lm_text_files(corpus_dir)]
    if t.task_text and ctx.cfg.tasks:
        tasks = load_tasks(ctx.cfg, read_json(ctx.input("fetch") / "fetched.json"))
        extra = ctx.out / "task-train.txt.in"
        if _write_task_text(tasks, ("train",), extra)[0]:
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
    summary: dict[str, Any] = {"lm": encode_corpus(tok_dir, lm_text_files(ctx.input("corpus")), ctx.out / "lm",
                                                   workers=ctx.cfg.runtime.workers, progress=ctx.progress)}
    tok = Tokenizer.load(tok_dir)
    tasks = load_tasks(ctx.cfg, _fetched(ctx))
    for name, data in tasks.items():
        tdir = ctx.out / "tasks" / name
        for role, split in data.splits.items():
            texts = [prepare_text(t) for t in split.texts]
            docs = [d if d else [tok.eos_id] for d in tok.encode(texts)]
            write_token_store(docs, tdir / role, vocab_size=tok.vocab_size, meta={"tokenizer_sha256": tok.checksum})
            write_json(tdir / role / "texts.json", texts)  # for subword-regularization sampling
            np.save(tdir / role / "labels.npy", np.asarray(split.labels, dtype=np.int64))
        write_json(tdir / "task.json", {
            "classes": list(data.classes), "unavailable": data.unavailable, "metric": data.spec.metric,
            "splits": {r: {"n": len(s.texts), "skipped": s.skipped, "path": str(s.path)} for r, s in data.splits.items()},
            "note": data.spec.note,
        })
        summary[name] = {r: len(s.texts) for r, s in data.splits.items()}
    return summary


def _lm_config(cfg: Config, vocab_size: int, drop_mult: float):
    from .model import ModelConfig

    m = cfg.model
    return ModelConfig(vocab_size=vocab_size, emb_size=m.emb_size, hidden_size=m.hidden_size, n_layers=m.n_layers,
                       drop_mult=drop_mult)


def _lm_train_config(section, discriminative: bool):
    from .train import LMTrainConfig

    return LMTrainConfig(epochs=section.epochs, lr=section.lr, wd=section.wd, clip=section.clip, alpha=section.alpha,
                         beta=section.beta, discriminative=discriminative,
                         checkpoint_minutes=section.checkpoint_minutes,
                         max_batches_per_epoch=section.max_batches_per_epoch,
                         keep_best=section.keep_best)


def pretrain(ctx: StageContext) -> dict[str, Any]:
    """Pretrain forward and backward AWD-LSTM language models on the general-domain corpus.

    With pretrain.workers > 1 each direction trains data-parallel on Ray Train (`run_data_parallel`).
    """
    cfg, p = ctx.cfg, ctx.cfg.pretrain
    summary = {}
    for direction in p.directions:
        out = ctx.out / direction
        if (out / "done.json").exists():
            summary[direction] = read_json(out / "done.json")
            continue
        job = dict(cfg=cfg, encode_dir=str(ctx.input("encode")), direction=direction, out=str(out))
        if p.workers > 1:
            from .distributed import run_data_parallel

            use_gpu = {"cuda": True, "cpu": False}.get(cfg.runtime.device)  # auto: if the cluster has GPUs
            run_data_parallel(pretrain_worker, job, num_workers=p.workers, use_gpu=use_gpu,
                              storage_path=ctx.out / "ray_train")
            result = read_json(out / "result.json")
        else:
            result = pretrain_direction(**job, device=device_for(cfg), progress=ctx.progress)
        write_json(out / "done.json", result)
        summary[direction] = result
    shutil.rmtree(ctx.out / "ray_train", ignore_errors=True)
    return summary


def pretrain_direction(cfg: Config, encode_dir: str, direction: str, out: str, *, device: str, progress: bool,
                       rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Train one LM direction on the encoded corpus; one rank's share of the batch when world_size > 1."""
    import torch

    from .model import build_language_model
    from .tokens import LMStream, TokenStore
    from .train import train_lm

    p = cfg.pretrain
    store = TokenStore.open(Path(encode_dir) / "lm")
    train_tokens, valid_tokens = store.split(cfg.encode.valid_frac)
    torch.manual_seed(0)
    model = build_language_model(_lm_config(cfg, int(store.meta["vocab_size"]), cfg.model.drop_mult))
    backwards = direction == "bwd"
    train = LMStream(train_tokens, p.batch_size, cfg.model.bptt, backwards=backwards, seed=0, rank=rank,
                     world_size=world_size)
    valid = LMStream(valid_tokens, p.batch_size, cfg.model.bptt, backwards=backwards, seed=0,
                     vary_bptt=False, shuffle_offset=False) if len(valid_tokens) > p.batch_size * 8 else None
    return train_lm(model, train, valid, _lm_train_config(p, discriminative=False), Path(out),
                    device=device, seed=0, progress=progress)


def pretrain_worker(job: dict[str, Any]) -> None:
    """Ray Train worker loop of a data-parallel `pretrain`: every rank trains; rank 0 writes result.json."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    result = pretrain_direction(**job, device=str(ray.train.torch.get_device()), progress=False, rank=rank,
                                world_size=world)
    if rank == 0:
        write_json(Path(job["out"]) / "result.json", result)


def _task_dirs(ctx: StageContext) -> dict[str, Path]:
    root = ctx.input("encode") / "tasks"
    return {t.name: root / t.name for t in ctx.cfg.tasks if (root / t.name / "train").exists()}


def finetune_lm(ctx: StageContext) -> dict[str, Any]:
    """Fine-tune each LM direction on each task's own text (train, valid, unlabeled; never test)."""
    import torch

    from .model import build_language_model
    from .tokens import LMStream, TokenStore
    from .train import train_lm

    cfg, f = ctx.cfg, ctx.cfg.finetune_lm
    lm_meta = TokenStore.open(ctx.input("encode") / "lm").meta
    summary: dict[str, Any] = {}
    for name, tdir in _task_dirs(ctx).items():
        stores = {role: TokenStore.open(tdir / role) for role in ("train", "valid", "unlabeled")
                  if (tdir / role).exists()}
        check_same_tokenizer(lm_meta, stores["train"].meta, tdir / "train")
        tokens = np.concatenate([np.asarray(s.tokens) for s in stores.values()])
        n_valid = max(len(tokens) // 10, 1)
        vocab_size = int(stores["train"].meta["vocab_size"])
        for direction in cfg.pretrain.directions:
            out = ctx.out / name / direction
            if (out / "done.json").exists():
                summary[f"{name}/{direction}"] = read_json(out / "done.json")
                continue
            torch.manual_seed(0)
            model = build_language_model(_lm_config(cfg, vocab_size, cfg.model.drop_mult))
            model.load_state_dict(torch.load(ctx.input("pretrain") / direction / "model.pt", map_location="cpu"))
            backwards = direction == "bwd"
            train = LMStream(tokens[:-n_valid], f.batch_size, cfg.model.bptt, backwards=backwards, seed=0)
            valid = LMStream(tokens[-n_valid:], min(f.batch_size, 8), cfg.model.bptt, backwards=backwards, seed=0,
                             vary_bptt=False, shuffle_offset=False) if n_valid > 8 * 16 else None
            result = train_lm(model, train, valid, _lm_train_config(f, discriminative=True), out,
                              device=device_for(cfg), seed=0, progress=ctx.progress)
            write_json(out / "done.json", result)
            summary[f"{name}/{direction}"] = result
    return summary


def check_same_tokenizer(lm_meta: dict, task_meta: dict, task_dir: Path) -> None:
    """Refuse to fine-tune an LM on task text encoded with another tokenizer (ids would mean other pieces).

    The pipeline encodes both with the one tokenizer of the run; this guards hand-assembled stores.
    """
    lm_sha, task_sha = lm_meta.get("tokenizer_sha256"), task_meta.get("tokenizer_sha256")
    if lm_meta.get("vocab_size") != task_meta.get("vocab_size") or (lm_sha and task_sha and lm_sha != task_sha):
        raise StageError(f"{task_dir}: task text was encoded with another tokenizer than the pretraining corpus "
                         f"(vocab {task_meta.get('vocab_size')} vs {lm_meta.get('vocab_size')}, sha256 "
                         f"{str(task_sha)[:12]} vs {str(lm_sha)[:12]}); ULMFiT here needs one tokenizer for both: "
                         "rerun the encode stage")


def _classifier_batches(tdir: Path, role: str, bs: int, *, shuffle: bool, seed: int, backwards: bool,
                        max_len: int, sampler: Any = None):
    """Batches of one encoded split; `sampler` (a Tokenizer) turns on subword-regularization sampling."""
    from .tokens import ClassifierBatches, TokenStore

    store = TokenStore.open(tdir / role)
    docs = [store.doc(i) for i in range(len(store))]
    labels = np.load(tdir / role / "labels.npy")
    resample = None
    if sampler is not None:
        texts = read_json(tdir / role / "texts.json")
        resample = lambda i: sampler.encode([texts[i]], sample=True)[0] or [sampler.eos_id]  # noqa: E731
    return ClassifierBatches(docs, labels, bs, shuffle=shuffle, seed=seed, max_len=max_len, backwards=backwards,
                             resample=resample)


def _tokenizer_of(encode_dir: Path) -> Path:
    """The tokenizer folder an encode output was made with (recorded in its metadata)."""
    return Path(read_json(encode_dir / "_stage.json")["inputs"]["tokenizer"]["path"])


def build_task_classifier(cfg: Config, task_dir: Path, n_classes: int, lm_path: Path | None, *,
                          drop_mult: float | None = None):
    """The run's classifier for an encoded task, its encoder loaded from the LM at `lm_path` (None: random)."""
    import torch

    from .model import build_classifier, build_language_model, load_encoder_into_classifier

    vocab_size = int(read_json(task_dir / "train" / "meta.json")["vocab_size"])
    lm = build_language_model(_lm_config(cfg, vocab_size, cfg.model.drop_mult))
    if lm_path is not None:
        lm.load_state_dict(torch.load(lm_path, map_location="cpu"))
    drop_mult = cfg.classifier.drop_mult if drop_mult is None else drop_mult
    model = build_classifier(_lm_config(cfg, vocab_size, drop_mult), n_classes, bptt=cfg.model.bptt,
                             max_len=cfg.classifier.max_len)
    load_encoder_into_classifier(model, lm)
    return model


def classifier_train_valid(cfg: Config, task_dir: Path, encode_dir: Path, *, seed: int, backwards: bool):
    """Train batches (with subword sampling when the recipe asks) and valid batches (None without a valid split)."""
    from .tokenizer import Tokenizer

    c = cfg.classifier
    sampler = Tokenizer.load(_tokenizer_of(encode_dir)) if c.subword_sampling else None
    train = _classifier_batches(task_dir, "train", c.batch_size, shuffle=True, seed=seed, backwards=backwards,
                                max_len=c.max_len, sampler=sampler)
    valid = _classifier_batches(task_dir, "valid", c.batch_size, shuffle=False, seed=seed, backwards=backwards,
                                max_len=c.max_len) if (task_dir / "valid").exists() else None
    return train, valid


def classifier_train_config(c: ClassifierConfig):
    """The recipe's `classifier` section as `train_classifier`'s config."""
    from .train import ClassifierTrainConfig

    return ClassifierTrainConfig(
        epochs=c.epochs, lr=c.lr, stage_lrs=tuple(c.stage_lrs), wd=c.wd, clip=c.clip,
        gradual_unfreezing=c.gradual_unfreezing, class_weights=c.class_weights,
        checkpoint_minutes=c.checkpoint_minutes, max_batches_per_epoch=c.max_batches_per_epoch)


def classifier(ctx: StageContext) -> dict[str, Any]:
    """Train ULMFiT classifiers (gradual unfreezing, discriminative LRs, STLR) per task, direction and seed."""
    import torch

    from .train import predict_proba, train_classifier

    cfg, c = ctx.cfg, ctx.cfg.classifier
    tcfg = classifier_train_config(c)
    summary: dict[str, Any] = {}
    for name, tdir in _task_dirs(ctx).items():
        task_meta = read_json(tdir / "task.json")
        n_classes = len(task_meta["classes"])
        score = _metric_fn(task_meta["metric"], n_classes)
        for direction in cfg.pretrain.directions:
            backwards = direction == "bwd"
            for seed in cfg.evaluate.seeds:
                out = ctx.out / name / direction / f"seed{seed}"
                key = f"{name}/{direction}/seed{seed}"
                if (out / "done.json").exists():
                    summary[key] = read_json(out / "done.json")
                    continue
                torch.manual_seed(seed)
                model = build_task_classifier(cfg, tdir, n_classes, ctx.input("finetune_lm") / name / direction / "model.pt")
                train, valid = classifier_train_valid(cfg, tdir, ctx.input("encode"), seed=seed, backwards=backwards)
                result = train_classifier(model, train, valid, tcfg, out, n_classes=n_classes,
                                          device=device_for(cfg), seed=seed, progress=ctx.progress, score=score)
                for role in ("valid", "test"):
                    if (tdir / role).exists():
                        batches = _classifier_batches(tdir, role, c.batch_size * 2, shuffle=False, seed=seed,
                                                      backwards=backwards, max_len=c.max_len)
                        np.save(out / f"proba_{role}.npy", predict_proba(model, batches, device=device_for(cfg)))
                write_json(out / "done.json", result)
                summary[key] = result
    return summary


def baselines(ctx: StageContext) -> dict[str, Any]:
    """Train the baselines (majority class, TF-IDF + logistic regression, fastText) on the same splits.

    Besides the test records, each trained baseline's class probabilities on the valid (when there is one)
    and test splits go to `probas/<task>/<system>/seed<seed>/proba_{valid,test}.npy`, with the labels they
    were scored against, for the evaluate stage's late fusion (`evaluate.fuse_with`).
    """
    from .baselines import BASELINES
    from .evaluate import compute_metrics

    cfg = ctx.cfg
    tasks = load_tasks(cfg, _fetched(ctx))
    records = []
    for name, data in tasks.items():
        if "train" not in data.splits or "test" not in data.splits:
            continue
        train, test = data.splits["train"], data.splits["test"]
        valid = data.splits.get("valid")
        train_texts = [prepare_text(t) for t in train.texts]
        test_texts = [prepare_text(t) for t in test.texts]
        valid_texts = [prepare_text(t) for t in valid.texts] if valid is not None else []
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
                records.append(_record(name, system, seed, compute_metrics(np.asarray(test.labels), pred,
                                                                             len(data.classes)), len(test_texts), cfg))
    _write_records(ctx.out / "records.jsonl", records)
    return {"records": len(records)}


def _pad_classes(proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Class columns up to the task's class count (a class absent from train gets no column from sklearn)."""
    if proba.shape[1] >= n_classes:
        return proba
    return np.pad(proba, ((0, 0), (0, n_classes - proba.shape[1])))


def _metric_fn(metric: str, n_classes: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """score(y_true, y_pred) for a task's metric name (as in compute_metrics)."""
    from .evaluate import compute_metrics

    return lambda y, pred: compute_metrics(y, pred, n_classes)[metric]


def _record(task: str, system: str, seed: int | None, metrics: dict[str, float], n: int, cfg: Config) -> dict:
    return {"task": task, "system": system, "seed": seed, "split": "test", "metrics": metrics, "n": n,
            "preset": cfg.preset, "note": next((t.note for t in cfg.tasks if t.name == task), "")}


def _write_records(path: Path, records: list[dict]) -> None:
    with atomic_write(path) as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def read_records(path: Path) -> list[dict]:
    """Result records written by the evaluate and baselines stages."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def seed_system_probas(clf_task_dir: Path, task_dir: Path, seed: int, directions: Sequence[str], *,
                       calibrate: bool, score: Callable[[np.ndarray, np.ndarray], float]
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[float]]]:
    """Test- and valid-split class probabilities of each system for one task and seed, and the valid-tuned offsets.

    Systems: each direction whose classifier finished (`<clf_task_dir>/<direction>/seed<seed>`), their
    `ensemble` when both did, and with `calibrate` (and a valid split) each of those again with per-class
    offsets fitted on the valid split (`"<system> + valid-tuned bias"`). Valid probabilities are there for
    the plain systems when the task has a valid split. Reads a finished classifier stage or one still
    running, which is how `bench/partial_results.py` peeks at a long stage.
    """
    from .evaluate import ensemble_proba

    has_valid = (task_dir / "valid").exists()
    probas, valid_probas = {}, {}
    for direction in directions:
        f = clf_task_dir / direction / f"seed{seed}" / "proba_test.npy"
        if f.exists():
            probas[direction] = np.load(f)
            if has_valid:
                valid_probas[direction] = np.load(f.with_name("proba_valid.npy"))
    if len(probas) == 2:
        probas["ensemble"] = ensemble_proba([probas["fwd"], probas["bwd"]])
        if has_valid:
            valid_probas["ensemble"] = ensemble_proba([valid_probas["fwd"], valid_probas["bwd"]])
    biases = _add_biased(probas, valid_probas, task_dir, score) if calibrate and has_valid else {}
    return probas, valid_probas, biases


def _add_biased(probas: dict[str, np.ndarray], valid_probas: dict[str, np.ndarray], task_dir: Path,
                score: Callable[[np.ndarray, np.ndarray], float]) -> dict[str, list[float]]:
    """Add `"<system> + valid-tuned bias"` to `probas` for each system; returns the offsets."""
    from .evaluate import apply_class_bias, tune_class_bias

    y_valid = np.load(task_dir / "valid" / "labels.npy")
    biases = {}
    for system in list(probas):
        bias = tune_class_bias(valid_probas[system], y_valid, score)
        biases[system] = bias.round(2).tolist()
        probas[f"{system} + valid-tuned bias"] = apply_class_bias(probas[system], bias)
    return biases


def pooled_seed_probas(per_seed: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], task_dir: Path, *,
                       calibrate: bool, score: Callable[[np.ndarray, np.ndarray], float]
                       ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """One ensemble of every seed's forward and backward classifiers (`"ensemble of N seeds"`), N >= 2.

    `per_seed` maps seed -> (test probas, valid probas) from `seed_system_probas`; seeds whose ensemble is
    not there (a direction unfinished) are left out. With `calibrate`, also its valid-tuned-bias twin.
    """
    from .evaluate import ensemble_proba

    seeds = [s for s, (test, _) in sorted(per_seed.items()) if "ensemble" in test]
    if len(seeds) < 2:
        return {}, {}
    system = f"ensemble of {len(seeds)} seeds"
    probas = {system: ensemble_proba([per_seed[s][0]["ensemble"] for s in seeds])}
    if not (task_dir / "valid").exists():
        return probas, {}
    valid = {system: ensemble_proba([per_seed[s][1]["ensemble"] for s in seeds])}
    return probas, (_add_biased(probas, valid, task_dir, score) if calibrate else {})


def baseline_probas(baselines_dir: Path, task: str, system: str, seed: int, task_dir: Path
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(valid, test) class probabilities the baselines stage saved for a task, system and seed.

    Raises StageError when they are missing (a baselines stage from before it saved them) or were scored
    against other labels than the encode stage's (the two stages read the task files apart).
    """
    d = baselines_dir / "probas" / task / system / f"seed{seed}"
    out = []
    for role in ("valid", "test"):
        f = d / f"proba_{role}.npy"
        if not f.exists():
            raise StageError(f"{f}: no saved probabilities for fusing '{system}'; rerun the baselines stage "
                             f"(`--from baselines`) or remove it from evaluate.fuse_with")
        if not np.array_equal(np.load(d / f"labels_{role}.npy"), np.load(task_dir / role / "labels.npy")):
            raise StageError(f"{d}: the {role} labels differ from {task_dir / role / 'labels.npy'}; "
                             f"the baselines and encode stages read different task files")
        out.append(np.load(f))
    return out[0], out[1]


def fused_probas(test: dict[str, np.ndarray], valid: dict[str, np.ndarray], baseline: tuple[np.ndarray, np.ndarray],
                 name: str, task_dir: Path, score: Callable[[np.ndarray, np.ndarray], float]
                 ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """`"ensemble + <name>"`: the seed's ULMFiT ensemble averaged with a baseline, weight fitted on valid."""
    from .evaluate import fuse_proba, tune_fusion_weight

    if "ensemble" not in test or "ensemble" not in valid:
        return {}, {}
    y_valid = np.load(task_dir / "valid" / "labels.npy")
    w = tune_fusion_weight(valid["ensemble"], baseline[0], y_valid, score)
    return {f"ensemble + {name}": fuse_proba(test["ensemble"], baseline[1], w)}, {f"ensemble + {name}": w}


def task_system_probas(cfg: Config, clf_task_dir: Path, task_dir: Path, baselines_dir: Path, *,
                       score: Callable[[np.ndarray, np.ndarray], float], fuse_with: Sequence[str]
                       ) -> tuple[dict[int | None, dict[str, np.ndarray]], dict[str, list[float]], dict[str, float]]:
    """Every system's test probabilities for one task: per seed, and under key None the pooled-seed ensemble.

    Per seed `seed_system_probas`, then each seed's ensemble fused with the `fuse_with` baselines (when the
    task has a valid split), then `pooled_seed_probas`. Also returns the valid-tuned offsets and the fusion
    weights, keyed `"<system>/seed<seed>"` (`"<system>/pooled"` for the pooled ensemble's offsets). The
    evaluate stage and `bench/partial_results.py` both score these.
    """
    by_seed, per_seed, biases, weights = {}, {}, {}, {}
    for seed in cfg.evaluate.seeds:
        probas, valid_probas, seed_biases = seed_system_probas(
            clf_task_dir, task_dir, seed, cfg.pretrain.directions, calibrate=cfg.classifier.calibrate, score=score)
        per_seed[seed] = (probas, valid_probas)
        biases.update({f"{system}/seed{seed}": b for system, b in seed_biases.items()})
        for baseline in fuse_with if (task_dir / "valid").exists() else []:
            saved = baseline_probas(baselines_dir, task_dir.name, baseline, seed, task_dir)
            fused, w = fused_probas(probas, valid_probas, saved, baseline, task_dir, score)
            probas.update(fused)
            weights.update({f"{system}/seed{seed}": v for system, v in w.items()})
        by_seed[seed] = probas
    pooled, pooled_biases = pooled_seed_probas(per_seed, task_dir, calibrate=cfg.classifier.calibrate, score=score)
    biases.update({f"{system}/pooled": b for system, b in pooled_biases.items()})
    by_seed[None] = pooled
    return by_seed, biases, weights


def evaluate(ctx: StageContext) -> dict[str, Any]:
    """Score forward, backward and ensembled classifiers on each task's test split; plots.

    Besides each seed's systems: one ensemble pooling every seed's classifiers (a single row), and with
    `evaluate.fuse_with` each seed's ensemble fused with those baselines (weights in `fusion_weights.json`).
    """
    from .evaluate import compute_metrics, confusion
    from .plots import plot_confusion, plot_learning_curves

    cfg = ctx.cfg
    records, biases, weights = [], {}, {}
    clf_dir = ctx.input("classifier")
    for name, tdir in _task_dirs(ctx).items():
        meta = read_json(tdir / "task.json")
        if not (tdir / "test").exists():
            continue
        y = np.load(tdir / "test" / "labels.npy")
        n_classes = len(meta["classes"])
        score = _metric_fn(meta["metric"], n_classes)

        def add(system: str, proba: np.ndarray, seed: int | None) -> None:
            pred = proba.argmax(1)
            records.append(_record(name, f"ULMFiT {system}", seed, compute_metrics(y, pred, n_classes), len(y), cfg))
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
    _write_records(ctx.out / "records.jsonl", records)
    if biases:
        write_json(ctx.out / "class_bias.json", biases)
    if weights:
        write_json(ctx.out / "fusion_weights.json", weights)
    return {"records": len(records)}


def table(ctx: StageContext) -> dict[str, Any]:
    """Gather results and published references into Markdown, CSV, JSON and LaTeX tables."""
    from .stages import environment
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
    header = {
        "recipe": cfg.recipe.name, "preset": cfg.preset,
        "command": " ".join([f"ulmfit-multi recipe {cfg.recipe.name} --preset {cfg.preset}"]
                            + [f"--set {shlex.quote(o)}" for o in cfg.overrides]),
        "code version": f"ulmfit_multi {env['ulmfit_multi']} ({env['git_commit'] or 'no git'})",
        "hardware": f"{env.get('cuda') or 'CPU'}, {env['cpu_count']} cores, {env['platform']}",
        "torch": env.get("torch", ""), "seeds": ", ".join(map(str, cfg.evaluate.seeds)),
    }
    paths = write_tables(records, references, ctx.out, title=f"{cfg.recipe.name} ({cfg.preset})",
                         metric_by_task={t.name: t.metric for t in cfg.tasks}, header=header,
                         unavailable=unavailable, stem="results")
    for plot in (ctx.input("evaluate") / "plots").glob("*.png"):
        (ctx.out / "plots").mkdir(exist_ok=True)
        shutil.copy2(plot, ctx.out / "plots" / plot.name)
    return {"tables": {k: str(v) for k, v in paths.items()}}


STAGES: list[Stage] = [
    Stage("fetch", fetch, reads=("data", "corpus.sources", "tasks"), still_valid=_fetch_still_valid),
    Stage("corpus", corpus, reads=("langs", "corpus", "data.max_task_rows"), after=("fetch",), version=2),
    Stage("tokenizer", tokenizer, reads=("tokenizer", "data.max_task_rows"), after=("fetch", "corpus")),
    Stage("encode", encode, reads=("encode", "data.max_task_rows", "tasks"), after=("fetch", "corpus", "tokenizer")),
    Stage("baselines", baselines, reads=("evaluate.seeds", "evaluate.baselines", "tasks", "data.max_task_rows"),
          after=("fetch",), version=3),
    Stage("pretrain", pretrain, reads=("model", "pretrain", "encode"), after=("encode",)),
    Stage("finetune_lm", finetune_lm, reads=("model", "finetune_lm", "pretrain.directions"),
          after=("encode", "pretrain")),
    Stage("classifier", classifier, reads=("model", "classifier", "evaluate.seeds", "pretrain.directions"),
          after=("encode", "finetune_lm")),
    Stage("evaluate", evaluate, reads=("evaluate", "pretrain.directions", "classifier.calibrate"),
          after=("encode", "classifier", "baselines"), version=2),
    Stage("table", table, reads=("reference", "tasks", "evaluate"), after=("encode", "evaluate", "baselines")),
]
STAGE_NAMES = [s.name for s in STAGES]


def run_recipe(recipe: str | Path, *, preset: str = "smoke", overrides: list[str] | dict | None = None,
               data_dir: str | Path | None = None, mirror: str | Path | None = None,
               work_dir: str | Path | None = None, from_stage: str | None = None, only: str | None = None,
               until: str | None = None, force: bool = False, device: str | None = None,
               progress: bool | None = None) -> RunResult:
    """Load a recipe and run its stages (skipping finished ones); the Python face of `ulmfit-multi recipe`."""
    cfg = load_recipe(recipe, preset, overrides)
    if device:
        cfg.runtime.device = device
    if progress is not None:
        cfg.runtime.progress = progress
    paths = Paths.resolve(data_dir, mirror, work_dir)
    return run_stages(STAGES, cfg, paths, from_stage=from_stage, only=only, until=until, force=force)
