"""Training the ULMFiT classifier: gradual unfreezing, discriminative learning rates, STLR per stage.

Usage (Python; the pipeline's `classifier` stage calls these):
    summary = train_classifier(clf, train_batches, valid_batches, cfg.classifier, out_dir, n_classes=3)
    probs = predict_proba(clf, test_batches)

Like `train.train_lm`, the loop writes into `out_dir`: ckpt/last.pt (atomic, at every epoch end and every
`checkpoint_minutes`; an existing one is resumed from, exactly), history.jsonl, learning_curve.png and
model.pt, the weights of the epoch with the best validation score (kept in ckpt/best.pt as it trains).

Schedule (ULMFiT section 3.2 as in fastai's ULMFiT recipe):
  * `cfg` is the recipe's `classifier` section (`config.ClassifierConfig`); its keys below in backquotes;
  * layer groups [embedding], [rnn0], [rnn1], [rnn2], [head]; group k below the top gets lr / `lr_decay`**k;
  * gradual unfreezing: epoch e trains the top `unfreeze_plan(5, epochs)[e]` groups ([1, 2, 3, 5] for
    4 epochs = fastai's freeze / freeze_to(-2) / freeze_to(-3) / unfreeze); frozen groups have
    requires_grad False (they stay in the optimizer, which skips parameters without gradients);
  * a stage is a run of consecutive epochs with the same trainable groups; each stage gets a fresh STLR
    cycle over its steps (fastai: one fit_one_cycle per unfreezing step), shaped by `cut_frac` and `ratio`.
    The top lr is `lr` in every stage (the paper's; the fastai notebook also lowers it per stage, which
    `stage_lrs` does); AdamW with `betas` and decoupled weight decay `wd`;
  * without gradual unfreezing all groups train in one STLR cycle over all epochs.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .atomic import save_torch
from .config import ClassifierConfig
from .model import Classifier, classifier_layer_groups
from .precision import autocast, resolve_precision
from .schedule import discriminative_lrs, stage_peak_lrs, stlr, unfreeze_plan
from .train import (
    EpochHook,
    StepHook,
    TrainRun,
    adamw,
    cap_batches,
    rng_state,
    seed_all,
    set_rng_state,
)

log = logging.getLogger(__name__)
ScoreFn = Callable[[np.ndarray, np.ndarray], float]  # (y_true, y_pred) -> higher is better


class ClassifierBatches(Protocol):
    """Classifier batches: (x (bs, T) right-padded, lengths (bs,), y (bs,) or None, idx (bs,))."""

    def batches(self, epoch: int) -> Iterable[tuple[Tensor, Tensor, Tensor | None, Tensor]]: ...
    def __len__(self) -> int: ...


def _stages(plan: list[int], n_batches: list[int]) -> list[tuple[int, int]]:
    """Per epoch: (steps before it within its stage, total steps of its stage); a stage = equal plan values."""
    out, e = [], 0
    while e < len(plan):
        end = e
        while end + 1 < len(plan) and plan[end + 1] == plan[e]:
            end += 1
        total, before = sum(n_batches[e : end + 1]), 0
        for k in range(e, end + 1):
            out.append((before, total))
            before += n_batches[k]
        e = end + 1
    return out


def _class_weights(train: ClassifierBatches, n_classes: int) -> Tensor:
    """Inverse-frequency weights n / (C * count_c) (sklearn 'balanced')."""
    labels = getattr(train, "labels", None)
    if labels is None:
        labels = torch.cat([y for _, _, y, _ in train.batches(0) if y is not None])
    counts = torch.bincount(torch.as_tensor(np.asarray(labels), dtype=torch.long), minlength=n_classes).float()
    return counts.sum() / (n_classes * counts.clamp(min=1))


@torch.no_grad()
def _evaluate_classifier(model: Classifier, batches: ClassifierBatches, device: str, precision: str, weight: Tensor | None,
                         score: ScoreFn | None = None) -> tuple[float, float, float]:
    """(mean cross-entropy, accuracy, score) over labelled batches; score is `score(y, pred)` or the accuracy."""
    was_training = model.training
    model.eval()
    loss, ys, preds = 0.0, [], []
    for x, lengths, y, _ in batches.batches(0):
        x, lengths, y = x.to(device), lengths.to(device), y.to(device)
        with autocast(device, precision):
            logits = model(x, lengths).float()
        loss += F.cross_entropy(logits, y, weight=weight, reduction="sum").item()
        ys.append(y.cpu().numpy())
        preds.append(logits.argmax(1).cpu().numpy())
    model.train(was_training)
    y_all = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    p_all = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    n = max(len(y_all), 1)
    acc = float((y_all == p_all).sum()) / n
    return loss / n, acc, (float(score(y_all, p_all)) if score is not None and len(y_all) else acc)


def encoder_ar_tar(outputs: Tensor, mask: Tensor, alpha: float, beta: float) -> Tensor:
    """AR (`alpha` x mean squared output) and TAR (`beta` x mean squared change between consecutive outputs)
    on the classifier encoder's outputs (bs, L, emb), over real tokens only (`mask` True), as fastai's
    `rnn_cbs` adds them to a text classifier's loss; 0 when both are 0."""
    reg = outputs.new_zeros((), dtype=torch.float32)
    if alpha:
        m = mask.unsqueeze(-1).float()
        reg = reg + alpha * (outputs.float().pow(2) * m).sum() / (m.sum() * outputs.size(-1)).clamp(min=1)
    if beta and outputs.size(1) > 1:
        pair = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1).float()
        diff = (outputs[:, 1:] - outputs[:, :-1]).float().pow(2) * pair
        reg = reg + beta * diff.sum() / (pair.sum() * outputs.size(-1)).clamp(min=1)
    return reg


def train_classifier(
    model: Classifier,
    train: ClassifierBatches,
    valid: ClassifierBatches | None,
    cfg: ClassifierConfig,
    out_dir: Path,
    *,
    n_classes: int,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    precision: str = "cuda-bf16",
    on_step: StepHook | None = None,
    score: ScoreFn | None = None,
    on_epoch: EpochHook | None = None,
) -> dict:
    """Fine-tune a classifier with gradual unfreezing, discriminative lrs and one STLR cycle per stage.

    Keeps the epoch with the best valid `score(y, pred)` (the task metric; accuracy when None; the last
    epoch without `valid`) as model.pt. `cfg` is the recipe's `classifier` section; of it the loop reads
    the training keys (its batch_size, max_len, drop_mult and subword_sampling are the batches' and the
    model's). `precision` as in `train.train_lm` (the resolved one is in the summary and the epoch records).
    Resumes from out_dir/ckpt/last.pt; `on_step` as in `train_lm`. `on_epoch(record)` runs after each
    finished epoch (and its checkpoint) with a copy of the epoch's history record (kind, epoch, step,
    trainable_groups, train_loss, train_accuracy, valid_loss, valid_accuracy, valid_score, lr) plus
    epochs_total. Returns a summary dict.
    """
    precision = resolve_precision(precision, device)
    run = TrainRun(out_dir, cfg.checkpoint_minutes)
    best_path = run.out_dir / "ckpt" / "best.pt"
    model.to(device)
    groups = classifier_layer_groups(model)
    n_groups = len(groups)
    plan = unfreeze_plan(n_groups, cfg.epochs) if cfg.gradual_unfreezing else [n_groups] * cfg.epochs
    lrs_by_epoch = [discriminative_lrs(top, n_groups, cfg.lr_decay) for top in stage_peak_lrs(plan, cfg.lr, cfg.stage_lrs)]
    n_batches = [cap_batches(len(train), cfg.max_batches_per_epoch) for _ in range(cfg.epochs)]
    stages = _stages(plan, n_batches)
    log_every = max(1, sum(n_batches) // 100)
    opt = adamw(groups, discriminative_lrs(cfg.lr, n_groups, cfg.lr_decay), cfg.betas, cfg.wd)  # set per step below
    weight = _class_weights(train, n_classes).to(device) if cfg.class_weights else None
    st = dict(epoch=0, batch=0, step=0, ep_loss=0.0, ep_n=0, ep_correct=0, win_loss=0.0, win_n=0, seconds=0.0,
              best_score=-1.0, best_epoch=-1, train_docs=0)  # fmt: skip
    history: list[dict] = []
    seed_all(seed)
    if (ck := run.load(device)) is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        st, history = ck["state"], ck["history"]
        if "best_acc" in st:  # checkpoints written before the key said what it holds
            st["best_score"] = st.pop("best_acc")
        set_rng_state(ck["rng"])

    def checkpoint() -> None:
        run.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), state=dict(st), history=history,
                      rng=rng_state(), config=asdict(cfg)))  # fmt: skip

    for epoch in range(st["epoch"], cfg.epochs):
        n_train = plan[epoch]
        for i, g in enumerate(groups):
            for p in g:
                p.requires_grad_(i >= n_groups - n_train)
        model.train()
        before, stage_steps = stages[epoch]
        bar = tqdm(total=n_batches[epoch], initial=st["batch"], desc=f"clf epoch {epoch} ({n_train}/{n_groups} groups)",
                   disable=not progress, leave=False)  # fmt: skip
        t0 = time.perf_counter()
        batches = itertools.islice(train.batches(epoch), st["batch"], n_batches[epoch])
        for x, lengths, y, _ in batches:
            scale = stlr(before + st["batch"], stage_steps, 1.0, cfg.cut_frac, cfg.ratio)
            for g, lr in zip(opt.param_groups, lrs_by_epoch[epoch]):
                g["lr"] = lr * scale
            st["batch"] += 1
            st["step"] += 1
            if x.size(0) > 1:  # BatchNorm needs 2+ rows in training; a lone last row is skipped
                x, lengths, y = x.to(device), lengths.to(device), y.to(device)
                with autocast(device, precision):
                    outputs, mask = model.encoder(x, lengths)
                    logits = model.head(outputs, mask).float()
                loss = F.cross_entropy(logits, y, weight=weight) + encoder_ar_tar(outputs, mask, cfg.alpha, cfg.beta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in groups for p in g if p.requires_grad], cfg.clip)
                opt.step()
                loss_v, n = loss.item(), y.numel()
                st["ep_loss"] += loss_v * n
                st["ep_n"] += n
                st["ep_correct"] += (logits.argmax(1) == y).sum().item()
                st["win_loss"] += loss_v * n
                st["win_n"] += n
                st["train_docs"] += n
                bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{st['ep_correct'] / st['ep_n']:.3f}")
            if st["step"] % log_every == 0 and st["win_n"]:
                history.append(dict(kind="step", epoch=epoch, step=st["step"], train_loss=st["win_loss"] / st["win_n"],
                                    lr=opt.param_groups[-1]["lr"]))  # fmt: skip
                st["win_loss"], st["win_n"] = 0.0, 0
            bar.update(1)
            if run.due() and st["batch"] < n_batches[epoch]:
                st["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
            if on_step is not None:
                on_step(dict(epoch=epoch, batch=st["batch"], step=st["step"], optimizer=opt, model=model, groups=groups))
        bar.close()
        st["seconds"] += time.perf_counter() - t0
        valid_loss, valid_acc, valid_score = (_evaluate_classifier(model, valid, device, precision, weight, score)
                                              if valid is not None else (None, None, None))
        rec = dict(
            kind="epoch", epoch=epoch, step=st["step"], trainable_groups=n_train, train_loss=st["ep_loss"] / max(st["ep_n"], 1),
            train_accuracy=st["ep_correct"] / max(st["ep_n"], 1), valid_loss=valid_loss, valid_accuracy=valid_acc,
            valid_score=valid_score,
            lr=opt.param_groups[-1]["lr"], precision=precision,
        )  # fmt: skip
        history.append(rec)
        log.info("classifier epoch %d: %s", epoch, rec)
        kept = valid_score if valid_score is not None else float(epoch)  # without valid: keep the last
        if kept > st["best_score"]:
            st["best_score"], st["best_epoch"] = kept, epoch
            save_torch(model.state_dict(), best_path)
        st.update(epoch=epoch + 1, batch=0, ep_loss=0.0, ep_n=0, ep_correct=0)
        checkpoint()
        run.write_history(history)
        run.plot("classifier")
        if on_epoch is not None:
            on_epoch({**rec, "epochs_total": cfg.epochs})

    for p in model.parameters():
        p.requires_grad_(True)
    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    save_torch(model.state_dict(), run.out_dir / "model.pt")
    best = next((r for r in history if r["kind"] == "epoch" and r["epoch"] == st["best_epoch"]), {})
    return dict(
        valid_accuracy=best.get("valid_accuracy"), valid_score=best.get("valid_score"), valid_loss=best.get("valid_loss"),
        best_epoch=st["best_epoch"],
        train_loss=best.get("train_loss"), epochs=cfg.epochs, steps=st["step"], seconds=st["seconds"],
        train_docs=st["train_docs"], plan=plan, precision=precision,
    )  # fmt: skip


@torch.no_grad()
def predict_proba(model: Classifier, batches: ClassifierBatches, *, device: str = "cpu",
                  precision: str = "cuda-bf16") -> np.ndarray:
    """Softmax probabilities in the ORIGINAL document order (via idx), shape (n_docs, n_classes); the forward
    pass at `precision` (`precision.resolve_precision`), the softmax in fp32."""
    was_training = model.training
    model.eval()
    model.to(device)
    idxs, probs = [], []
    for x, lengths, _, idx in batches.batches(0):
        with autocast(device, precision):
            logits = model(x.to(device), lengths.to(device)).float()
        probs.append(logits.softmax(1).cpu())
        idxs.append(torch.as_tensor(idx).long().cpu())
    model.train(was_training)
    idx, p = torch.cat(idxs), torch.cat(probs)
    out = torch.full((int(idx.max()) + 1, p.size(1)), float("nan"))
    out[idx] = p
    return out.numpy()
