"""From a recipe's sections to the objects that train: models and batches.

The trainers take the recipe's own sections (`train.train_lm` a `pretrain` or `finetune_lm` section,
`train_classifier.train_classifier` the `classifier` section) and the models its `model` section, so there
is no second config type to translate to.

Every place that turns a `Config` into something torch runs goes through here (the pipeline's stages,
`trial`, prediction, the probe), so a setting means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import read_json
from .config import Config

if TYPE_CHECKING:
    from .model import Classifier, LanguageModel
    from .tokens import ClassifierBatches


def device_for(cfg: Config) -> str:
    """'cuda' when asked for or available (auto), else 'cpu'."""
    import torch

    if cfg.runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.runtime.device


def build_lm(cfg: Config, vocab_size: int, weights: Path | None = None) -> LanguageModel:
    """The recipe's language model, with `weights` (a state dict file) loaded when given."""
    import torch

    from .model import build_language_model

    lm = build_language_model(cfg.model, vocab_size)
    if weights is not None:
        lm.load_state_dict(torch.load(weights, map_location="cpu"))
    return lm


def build_task_classifier(cfg: Config, task_dir: Path, n_classes: int, lm_path: Path | None, *,
                          drop_mult: float | None = None) -> Classifier:
    """The run's classifier for an encoded task, its encoder loaded from the LM at `lm_path` (None: random)."""
    from .model import load_encoder_into_classifier

    vocab_size = int(read_json(task_dir / "train" / "meta.json")["vocab_size"])
    lm = build_lm(cfg, vocab_size, lm_path)
    model = build_run_classifier(cfg, vocab_size, n_classes, drop_mult=drop_mult)
    load_encoder_into_classifier(model, lm)
    return model


def build_run_classifier(cfg: Config, vocab_size: int, n_classes: int, *, drop_mult: float | None = None
                         ) -> Classifier:
    """An untrained classifier of the recipe's sizes and dropouts (weights are loaded by the caller); its
    dropouts are scaled by `classifier.drop_mult` unless `drop_mult` is given."""
    from .model import build_classifier

    drop_mult = cfg.classifier.drop_mult if drop_mult is None else drop_mult
    return build_classifier(dataclasses.replace(cfg.model, drop_mult=drop_mult), vocab_size, n_classes,
                            max_len=cfg.classifier.max_len)


def classifier_batches(task_dir: Path, role: str, bs: int, *, shuffle: bool, seed: int, backwards: bool,
                       max_len: int, sampler: object = None, boundary: str = "eos",
                       rows: np.ndarray | None = None) -> ClassifierBatches:
    """Batches of one encoded split; `sampler` (a Tokenizer) turns on subword-regularization sampling, each
    sampled document started by the encode stage's `boundary` as the stored ones are. `rows`: only these
    documents of the split, in this order (their positions in `rows` are the batches' indices); None: all."""
    from .tokens import ClassifierBatches, TokenStore

    store = TokenStore.open(task_dir / role)
    index = range(len(store)) if rows is None else [int(i) for i in rows]
    docs = [store.doc(i) for i in index]
    labels = np.load(task_dir / role / "labels.npy")
    if rows is not None:
        labels = labels[np.asarray(index, dtype=np.int64)]
    resample = None
    if sampler is not None:
        texts = read_json(task_dir / role / "texts.json")
        if rows is not None:
            texts = [texts[i] for i in index]
        resample = lambda i: sampler.encode_documents([texts[i]], boundary=boundary, sample=True)[0]  # noqa: E731
    return ClassifierBatches(docs, labels, bs, shuffle=shuffle, seed=seed, max_len=max_len, backwards=backwards,
                             resample=resample)


def tokenizer_dir_of(encode_dir: Path) -> Path:
    """The tokenizer folder an encode output was made with (recorded in its metadata)."""
    return Path(read_json(encode_dir / "_stage.json")["inputs"]["tokenizer"]["path"])


def classifier_train_valid(cfg: Config, task_dir: Path, encode_dir: Path, *, seed: int, backwards: bool,
                           train_rows: np.ndarray | None = None, valid_rows: np.ndarray | None = None
                           ) -> tuple[ClassifierBatches, ClassifierBatches | None]:
    """Train batches (with subword sampling when the recipe asks) and valid batches (None without a valid split);
    `train_rows`, `valid_rows`: only those documents of the split (a label budget), None: the whole split."""
    from .tokenizer import Tokenizer

    c = cfg.classifier
    sampler = Tokenizer.load(tokenizer_dir_of(encode_dir)) if c.subword_sampling else None
    train = classifier_batches(task_dir, "train", c.batch_size, shuffle=True, seed=seed, backwards=backwards,
                               max_len=c.max_len, sampler=sampler, boundary=cfg.encode.doc_boundary, rows=train_rows)
    valid = classifier_batches(task_dir, "valid", c.batch_size, shuffle=False, seed=seed, backwards=backwards,
                               max_len=c.max_len, rows=valid_rows) if (task_dir / "valid").exists() else None
    return train, valid
