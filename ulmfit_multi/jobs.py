"""One unit of training work each: an LM direction pretrained, an LM direction fine-tuned on a task, one
classifier (task x direction x seed) trained and scored.

The pipeline's stages loop over these; a Ray Train worker (`ddp.pretrain_worker`) runs `pretrain_direction`
on each rank, and `ulmfit-multi trial` runs `train_one_classifier` outside any stage. Each writes only into
its `out` folder and returns the trainer's summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .builders import build_lm, build_task_classifier, classifier_batches, classifier_train_valid
from .config import Config
from .precision import resolve_precision

EpochHook = Callable[[dict[str, Any]], None]


def pretrain_direction(cfg: Config, encode_dir: str | Path, direction: str, out: str | Path, *, device: str,
                       progress: bool, rank: int = 0, world_size: int = 1, on_epoch: EpochHook | None = None,
                       on_checkpoint: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Train one LM direction on the encoded corpus; one rank's share of the batch when world_size > 1.
    `on_checkpoint` as in `train.train_lm` (called on rank 0 only)."""
    import torch

    from .tokens import LMStream, TokenStore
    from .train import train_lm

    p = cfg.pretrain
    store = TokenStore.open(Path(encode_dir) / "lm")
    train_tokens, valid_tokens = store.split(cfg.encode.valid_frac)
    torch.manual_seed(0)
    model = build_lm(cfg, int(store.meta["vocab_size"]))
    backwards = direction == "bwd"
    train = LMStream(train_tokens, p.batch_size, cfg.model.bptt, backwards=backwards, seed=0, rank=rank,
                     world_size=world_size)
    valid = LMStream(valid_tokens, p.batch_size, cfg.model.bptt, backwards=backwards, seed=0,
                     vary_bptt=False, shuffle_offset=False) if len(valid_tokens) > p.batch_size * 8 else None
    return train_lm(model, train, valid, p, Path(out), device=device, seed=0, progress=progress, on_epoch=on_epoch,
                    precision=resolve_precision(cfg.model.precision, device), on_checkpoint=on_checkpoint)


def finetune_direction(cfg: Config, tokens: np.ndarray, vocab_size: int, pretrained: Path, direction: str,
                       out: Path, *, device: str, progress: bool, on_epoch: EpochHook | None = None,
                       doc_offsets: np.ndarray | None = None,
                       on_checkpoint: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Fine-tune the pretrained LM of one direction on a task's token stream (its last tenth is the valid part).

    `doc_offsets` (document boundaries in `tokens`) are needed for `finetune_lm.shuffle_docs`; `on_checkpoint`
    as in `train.train_lm`."""
    import torch

    from .tokens import LMStream
    from .train import train_lm

    f = cfg.finetune_lm
    n_valid = max(len(tokens) // 10, 1)
    train_docs = None
    if f.shuffle_docs:
        if doc_offsets is None:
            raise ValueError("finetune_lm.shuffle_docs needs the documents' offsets")
        n_train = len(tokens) - n_valid
        train_docs = np.unique(np.append(doc_offsets[doc_offsets < n_train], n_train))
    torch.manual_seed(0)
    model = build_lm(cfg, vocab_size, pretrained)
    backwards = direction == "bwd"
    train = LMStream(tokens[:-n_valid], f.batch_size, cfg.model.bptt, backwards=backwards, seed=0,
                     doc_offsets=train_docs)
    valid = LMStream(tokens[-n_valid:], min(f.batch_size, 8), cfg.model.bptt, backwards=backwards, seed=0,
                     vary_bptt=False, shuffle_offset=False) if n_valid > 8 * 16 else None
    return train_lm(model, train, valid, f, out, device=device, seed=0, progress=progress, on_epoch=on_epoch,
                    precision=resolve_precision(cfg.model.precision, device), on_checkpoint=on_checkpoint)


def train_one_classifier(cfg: Config, task_dir: Path, encode_dir: Path, lm_path: Path, direction: str, seed: int,
                         out: Path, *, n_classes: int, score: Callable[[np.ndarray, np.ndarray], float],
                         device: str, progress: bool, on_epoch: EpochHook | None = None,
                         train_rows: np.ndarray | None = None, valid_rows: np.ndarray | None = None
                         ) -> dict[str, Any]:
    """Train one classifier from a fine-tuned LM and save its class probabilities on the valid and test
    splits (`proba_valid.npy`, `proba_test.npy`, for the splits the task has) next to its weights.

    `train_rows`, `valid_rows` (row indices of the encoded splits; None: the whole split) train it on a subset
    of the labels and pick its epoch on a subset of valid (the `curves` stage's label budgets); then
    `proba_valid.npy` holds the `valid_rows` in that order. Test is always scored whole."""
    import torch

    from .train_classifier import predict_proba, train_classifier

    c = cfg.classifier
    precision = resolve_precision(cfg.model.precision, device)
    backwards = direction == "bwd"
    torch.manual_seed(seed)
    model = build_task_classifier(cfg, task_dir, n_classes, lm_path)
    train, valid = classifier_train_valid(cfg, task_dir, encode_dir, seed=seed, backwards=backwards,
                                          train_rows=train_rows, valid_rows=valid_rows)
    result = train_classifier(model, train, valid, c, out, n_classes=n_classes, device=device, seed=seed,
                              progress=progress, score=score, on_epoch=on_epoch, precision=precision)
    for role in ("valid", "test"):
        if (task_dir / role).exists():
            batches = classifier_batches(task_dir, role, c.batch_size * 2, shuffle=False, seed=seed,
                                         backwards=backwards, max_len=c.max_len,
                                         rows=valid_rows if role == "valid" else None)
            np.save(out / f"proba_{role}.npy", predict_proba(model, batches, device=device, precision=precision))
    return result
