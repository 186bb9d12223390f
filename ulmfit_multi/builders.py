"""From a recipe's sections to the objects that train: model configs, models, trainer configs, batches.

Every place that turns a `Config` into something torch runs goes through here (the pipeline's stages,
`trial`, prediction, the probe), so a setting means the same thing everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import read_json
from .config import ClassifierConfig, Config, LMSection

if TYPE_CHECKING:
    from .model import Classifier, LanguageModel, ModelConfig
    from .tokens import ClassifierBatches
    from .train import LMTrainConfig
    from .train_classifier import ClassifierTrainConfig


def device_for(cfg: Config) -> str:
    """'cuda' when asked for or available (auto), else 'cpu'."""
    import torch

    if cfg.runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.runtime.device


def model_config(cfg: Config, vocab_size: int, drop_mult: float) -> ModelConfig:
    """The AWD-LSTM config of the recipe's `model` section for a vocabulary size."""
    from .model import ModelConfig

    m = cfg.model
    return ModelConfig(vocab_size=vocab_size, emb_size=m.emb_size, hidden_size=m.hidden_size, n_layers=m.n_layers,
                       drop_mult=drop_mult)


def lm_train_config(section: LMSection, discriminative: bool) -> LMTrainConfig:
    """A `pretrain` or `finetune_lm` section as `train_lm`'s config."""
    from .train import LMTrainConfig

    return LMTrainConfig(epochs=section.epochs, lr=section.lr, wd=section.wd, clip=section.clip, alpha=section.alpha,
                         beta=section.beta, discriminative=discriminative,
                         checkpoint_minutes=section.checkpoint_minutes,
                         max_batches_per_epoch=section.max_batches_per_epoch,
                         keep_best=section.keep_best)


def classifier_train_config(c: ClassifierConfig) -> ClassifierTrainConfig:
    """The recipe's `classifier` section as `train_classifier`'s config."""
    from .train_classifier import ClassifierTrainConfig

    return ClassifierTrainConfig(
        epochs=c.epochs, lr=c.lr, stage_lrs=tuple(c.stage_lrs), wd=c.wd, clip=c.clip,
        gradual_unfreezing=c.gradual_unfreezing, class_weights=c.class_weights,
        checkpoint_minutes=c.checkpoint_minutes, max_batches_per_epoch=c.max_batches_per_epoch)


def build_lm(cfg: Config, vocab_size: int, weights: Path | None = None) -> LanguageModel:
    """The recipe's language model, with `weights` (a state dict file) loaded when given."""
    import torch

    from .model import build_language_model

    lm = build_language_model(model_config(cfg, vocab_size, cfg.model.drop_mult))
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
    """An untrained classifier of the recipe's sizes and dropouts (weights are loaded by the caller)."""
    from .model import build_classifier

    drop_mult = cfg.classifier.drop_mult if drop_mult is None else drop_mult
    return build_classifier(model_config(cfg, vocab_size, drop_mult), n_classes, bptt=cfg.model.bptt,
                            max_len=cfg.classifier.max_len)


def classifier_batches(task_dir: Path, role: str, bs: int, *, shuffle: bool, seed: int, backwards: bool,
                       max_len: int, sampler: object = None) -> ClassifierBatches:
    """Batches of one encoded split; `sampler` (a Tokenizer) turns on subword-regularization sampling."""
    from .tokens import ClassifierBatches, TokenStore

    store = TokenStore.open(task_dir / role)
    docs = [store.doc(i) for i in range(len(store))]
    labels = np.load(task_dir / role / "labels.npy")
    resample = None
    if sampler is not None:
        texts = read_json(task_dir / role / "texts.json")
        resample = lambda i: sampler.encode([texts[i]], sample=True)[0] or [sampler.eos_id]  # noqa: E731
    return ClassifierBatches(docs, labels, bs, shuffle=shuffle, seed=seed, max_len=max_len, backwards=backwards,
                             resample=resample)


def tokenizer_dir_of(encode_dir: Path) -> Path:
    """The tokenizer folder an encode output was made with (recorded in its metadata)."""
    return Path(read_json(encode_dir / "_stage.json")["inputs"]["tokenizer"]["path"])


def classifier_train_valid(cfg: Config, task_dir: Path, encode_dir: Path, *, seed: int, backwards: bool
                           ) -> tuple[ClassifierBatches, ClassifierBatches | None]:
    """Train batches (with subword sampling when the recipe asks) and valid batches (None without a valid split)."""
    from .tokenizer import Tokenizer

    c = cfg.classifier
    sampler = Tokenizer.load(tokenizer_dir_of(encode_dir)) if c.subword_sampling else None
    train = classifier_batches(task_dir, "train", c.batch_size, shuffle=True, seed=seed, backwards=backwards,
                               max_len=c.max_len, sampler=sampler)
    valid = classifier_batches(task_dir, "valid", c.batch_size, shuffle=False, seed=seed, backwards=backwards,
                               max_len=c.max_len) if (task_dir / "valid").exists() else None
    return train, valid
