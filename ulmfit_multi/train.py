"""Training loops: AWD-LSTM language model (pretraining / fine-tuning) and the ULMFiT classifier.

Usage (Python; the pipeline's `pretrain`, `finetune_lm` and `classifier` stages call these):
    summary = train_lm(build_language_model(cfg), train_stream, valid_stream, LMTrainConfig(), out_dir)
    summary = train_classifier(clf, train_batches, valid_batches, ClassifierTrainConfig(), out_dir, n_classes=3)

Both loops write into `out_dir`: ckpt/last.pt (atomic, at every epoch end and every
`checkpoint_minutes`; an existing one is resumed from, exactly), history.jsonl, learning_curve.png
and model.pt: the last epoch's weights, or with `keep_best` the LM's epoch of lowest valid loss (kept in
ckpt/best.pt as it trains; the classifier always keeps its best epoch). A resumed run reproduces the
uninterrupted one (same batches, RNG states, hidden state, optimizer state and loss accumulators are
restored).

Classifier schedule (ULMFiT section 3.2 as in fastai's ULMFiT recipe):
  * layer groups [embedding], [rnn0], [rnn1], [rnn2], [head]; group k below the top gets lr / lr_decay**k;
  * gradual unfreezing: epoch e trains the top `unfreeze_plan(5, epochs)[e]` groups ([1, 2, 3, 5] for
    4 epochs = fastai's freeze / freeze_to(-2) / freeze_to(-3) / unfreeze); frozen groups have
    requires_grad False (they stay in the optimizer, which skips parameters without gradients);
  * a stage is a run of consecutive epochs with the same trainable groups; each stage gets a fresh STLR
    cycle over its steps (fastai: one fit_one_cycle per unfreezing step). The top lr is `lr` in every
    stage (the paper's; the fastai notebook also lowers it per stage, which a recipe can do by hand);
  * without gradual unfreezing all groups train in one STLR cycle over all epochs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .atomic import atomic_write, save_torch
from .model import Classifier, LanguageModel, LMOutput, classifier_layer_groups, lm_layer_groups
from .schedule import discriminative_lrs, stage_peak_lrs, stlr, unfreeze_plan

log = logging.getLogger(__name__)
StepHook = Callable[[dict[str, Any]], None]
ScoreFn = Callable[[np.ndarray, np.ndarray], float]  # (y_true, y_pred) -> higher is better


class LMStream(Protocol):
    """Language-model batches: (x, y) (bs, seq_len), y = x shifted by one."""

    def batches(self, epoch: int, start: int = 0) -> Iterable[tuple[Tensor, Tensor]]: ...
    def num_batches(self, epoch: int) -> int: ...


class ClassifierBatches(Protocol):
    """Classifier batches: (x (bs, T) right-padded, lengths (bs,), y (bs,) or None, idx (bs,))."""

    def batches(self, epoch: int) -> Iterable[tuple[Tensor, Tensor, Tensor | None, Tensor]]: ...
    def __len__(self) -> int: ...


@dataclass
class LMTrainConfig:
    """Language-model training (AWD-LSTM regularization + ULMFiT STLR)."""

    epochs: int = 1
    lr: float = 1e-3  # peak lr of the top group
    wd: float = 0.01  # decoupled (AdamW)
    clip: float = 0.4  # max grad norm
    alpha: float = 2.0  # AR: activation regularization on the dropped last-layer output
    beta: float = 1.0  # TAR: temporal activation regularization on the raw last-layer output
    betas: tuple[float, float] = (0.7, 0.99)  # ULMFiT's Adam betas
    cut_frac: float = 0.1
    ratio: float = 32.0
    discriminative: bool = False  # True for LM fine-tuning: lr / 2.6**k per layer group
    checkpoint_minutes: float = 10.0  # 0 = every step
    bf16: bool = True  # autocast bf16, only on CUDA
    max_batches_per_epoch: int = 0  # 0 = all
    bptt: int = 70  # the lr is scaled by seq_len / bptt; a stream's own `.bptt` wins if it has one
    keep_best: bool = False  # keep the epoch with the lowest valid loss (needs a valid stream), not the last


@dataclass
class ClassifierTrainConfig:
    """Classifier training with the full ULMFiT schedule."""

    epochs: int = 4
    lr: float = 1e-2  # top-group peak lr (paper: 0.01)
    wd: float = 0.01
    clip: float = 0.4
    betas: tuple[float, float] = (0.7, 0.99)
    cut_frac: float = 0.1
    ratio: float = 32.0
    gradual_unfreezing: bool = True
    lr_decay: float = 2.6  # discriminative fine-tuning factor between layer groups
    stage_lrs: tuple[float, ...] = ()  # top-group peak lr per unfreezing stage (last one repeats); () = `lr` in all
    class_weights: bool = False  # inverse-frequency ("balanced") cross-entropy weights
    checkpoint_minutes: float = 10.0  # 0 = every step
    bf16: bool = True
    max_batches_per_epoch: int = 0


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _autocast(device: str, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"].cpu())
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in s["cuda"]])


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed group, (0, 1) outside data-parallel training."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sync_step(loss: Tensor, due: bool, world: int) -> tuple[float, bool]:
    """(mean loss over ranks, checkpoint due on any rank), in one all-reduce per step.

    Every rank must checkpoint at the same step (the checkpoint gathers per-rank state), so a rank's
    time-based `due` is shared with the others in the same collective as the loss.
    """
    if world == 1:
        return loss.item(), due
    import torch.distributed as dist

    box = torch.stack([loss.detach().float(), loss.new_tensor(float(due), dtype=torch.float32)])
    dist.all_reduce(box)
    return box[0].item() / world, box[1].item() > 0


def _gather(obj: Any, world: int) -> list:
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    return obj


def _cap(n: int, limit: int) -> int:
    return min(n, limit) if limit > 0 else n


def _adamw(groups: list[list[nn.Parameter]], lrs: list[float], betas: tuple[float, float], wd: float) -> torch.optim.AdamW:
    return torch.optim.AdamW([{"params": g, "lr": lr} for g, lr in zip(groups, lrs)], lr=lrs[-1], betas=tuple(betas), weight_decay=wd)


class _Run:
    """Checkpoint, history and plot bookkeeping shared by both loops."""

    def __init__(self, out_dir: Path, checkpoint_minutes: float, writer: bool = True):
        self.out_dir, self.writer = Path(out_dir), writer  # writer False: a data-parallel rank > 0 writes nothing
        self.ckpt_path = self.out_dir / "ckpt" / "last.pt"
        self.every_s = checkpoint_minutes * 60
        self.last_save = time.monotonic()

    def load(self, device: str) -> dict | None:
        if not self.ckpt_path.exists():
            return None
        log.info("resuming from %s", self.ckpt_path)
        return torch.load(self.ckpt_path, map_location=device, weights_only=False)

    def save(self, ckpt: dict) -> None:
        if self.writer:
            save_torch(ckpt, self.ckpt_path)
        self.last_save = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.every_s

    def write_history(self, history: list[dict]) -> None:
        if not self.writer:
            return
        with atomic_write(self.out_dir / "history.jsonl") as f:
            for rec in history:
                f.write(json.dumps(rec) + "\n")

    def plot(self, history: list[dict], metric: str | None = None) -> None:
        if not self.writer:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r for r in history if r["kind"] == "step"]
        epochs = [r for r in history if r["kind"] == "epoch"]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["step"] for r in steps], [r["train_loss"] for r in steps], label="train loss", lw=1)
        ev = [r for r in epochs if r.get("valid_loss") is not None]
        ax.plot([r["step"] for r in ev], [r["valid_loss"] for r in ev], "o-", label="valid loss")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy")
        if metric and any(r.get(metric) is not None for r in epochs):
            ax2 = ax.twinx()
            ax2.plot([r["step"] for r in epochs], [r[metric] for r in epochs], "s--", color="tab:green", label=metric)
            ax2.set_ylabel(metric)
            ax2.legend(loc="upper center")
        ax.legend(loc="upper right")
        fig.tight_layout()
        with atomic_write(self.out_dir / "learning_curve.png", "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)


def ar_tar(out: LMOutput, alpha: float, beta: float) -> Tensor:
    """AR on the dropped last-layer output + TAR on the raw one (Merity et al. 2017, section 4.6)."""
    reg = out.logits.new_zeros((), dtype=torch.float32)
    if alpha:
        reg = reg + alpha * out.dropped.float().pow(2).mean()
    if beta and out.raw.size(1) > 1:
        reg = reg + beta * (out.raw[:, 1:] - out.raw[:, :-1]).float().pow(2).mean()
    return reg


# ---------------------------------------------------------------------------------------------
# Language model


@torch.no_grad()
def evaluate_lm(model: LanguageModel, stream: LMStream, *, device: str = "cpu", max_batches: int = 0, bf16: bool = True) -> float:
    """Mean per-token cross-entropy over the stream (epoch 0), hidden state carried across batches."""
    was_training = model.training
    model.eval()
    model.reset()
    total, n_tok = 0.0, 0
    batches = stream.batches(0)
    if max_batches > 0:
        batches = itertools.islice(batches, max_batches)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with _autocast(device, bf16):
            logits = model(x).logits
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        n_tok += y.numel()
    model.reset()
    model.train(was_training)
    return total / max(n_tok, 1)


def train_lm(
    model: LanguageModel,
    train: LMStream,
    valid: LMStream | None,
    cfg: LMTrainConfig,
    out_dir: Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    on_step: StepHook | None = None,
) -> dict:
    """Train an LM with STLR over all steps, AdamW(betas), clipping, AR/TAR and variable-BPTT lr scaling.

    Resumes from out_dir/ckpt/last.pt when present. `on_step(info)` runs after every step (and after its
    checkpoint, if one was due); raising there interrupts training (tests). Returns a summary dict.
    """
    rank, world = _dist_rank_world()
    run = _Run(out_dir, cfg.checkpoint_minutes, writer=rank == 0)
    model.to(device)
    groups = lm_layer_groups(model)
    base_lrs = discriminative_lrs(cfg.lr, len(groups)) if cfg.discriminative else [cfg.lr] * len(groups)
    opt = _adamw(groups, base_lrs, cfg.betas, cfg.wd)
    n_batches = [_cap(train.num_batches(e), cfg.max_batches_per_epoch) for e in range(cfg.epochs)]
    total_steps = sum(n_batches)
    log_every = max(1, total_steps // 100)
    bptt = getattr(train, "bptt", cfg.bptt)
    params = [p for g in groups for p in g]
    st = dict(epoch=0, batch=0, step=0, ep_loss=0.0, ep_tokens=0, win_loss=0.0, win_tokens=0, train_tokens=0, seconds=0.0,
              best_loss=math.inf, best_epoch=-1)  # fmt: skip
    history: list[dict] = []
    best_path = run.out_dir / "ckpt" / "best.pt"
    _seed_all(seed + rank)  # dropout masks differ per rank; weights are rank 0's (DDP broadcasts them)
    if (ck := run.load(device)) is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        st, history = {"best_loss": math.inf, "best_epoch": -1, **ck["state"]}, ck["history"]
        if ck.get("world_size", 1) != world:
            raise RuntimeError(f"{run.ckpt_path}: written by {ck.get('world_size', 1)} workers, resumed with "
                               f"{world}; resume with the same number or delete the checkpoint")
        model.encoder.hidden = ck["hidden"][rank] if world > 1 else ck["hidden"]
        _set_rng_state(ck["rng"][rank] if world > 1 else ck["rng"])
    net: nn.Module = model
    if world > 1:  # gradients are averaged over ranks, each holding batch_size / world rows of the batch
        from torch.nn.parallel import DistributedDataParallel

        index = torch.device(device).index  # "cuda:1" -> 1; "cpu" and a bare "cuda" -> None
        net = DistributedDataParallel(model, device_ids=[index] if index is not None else None)

    def checkpoint() -> None:
        hidden, rng = model.encoder.hidden, _rng_state()
        if world > 1:  # every rank carries its own rows' hidden state and RNG: gather them
            hidden, rng = _gather(_to_cpu(hidden), world), _gather(rng, world)
        run.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), state=dict(st), history=history,
                      hidden=hidden, rng=rng, world_size=world, config=asdict(cfg)))  # fmt: skip

    lr_now = base_lrs[-1]
    for epoch in range(st["epoch"], cfg.epochs):
        model.train()
        if st["batch"] == 0:
            model.reset()
        bar = tqdm(total=n_batches[epoch], initial=st["batch"], desc=f"lm epoch {epoch}", disable=not progress, leave=False)
        t0, tok0 = time.perf_counter(), 0
        for x, y in train.batches(epoch, start=st["batch"]):
            if st["batch"] >= n_batches[epoch]:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # STLR over all steps; AWD-LSTM scales the lr with the sampled sequence length
            scale = stlr(st["step"], total_steps, 1.0, cfg.cut_frac, cfg.ratio) * x.size(1) / bptt
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * scale
            lr_now = base_lrs[-1] * scale
            with _autocast(device, cfg.bf16):
                out = net(x)
                loss = F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten())
                reg = ar_tar(out, cfg.alpha, cfg.beta)
            opt.zero_grad(set_to_none=True)
            (loss + reg).backward()
            nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()

            loss_v, due = _sync_step(loss, run.due(), world)
            n_tok = y.numel() * world
            st["step"] += 1
            st["batch"] += 1
            st["ep_loss"] += loss_v * n_tok
            st["ep_tokens"] += n_tok
            st["win_loss"] += loss_v * n_tok
            st["win_tokens"] += n_tok
            st["train_tokens"] += n_tok
            tok0 += n_tok
            tok_s = tok0 / max(time.perf_counter() - t0, 1e-9)
            if st["step"] % log_every == 0:
                history.append(dict(kind="step", epoch=epoch, step=st["step"], train_loss=st["win_loss"] / st["win_tokens"], lr=lr_now))
                st["win_loss"], st["win_tokens"] = 0.0, 0
            bar.update(1)
            bar.set_postfix(loss=f"{loss_v:.3f}", ppl=f"{math.exp(min(loss_v, 50)):.1f}", tok_s=f"{tok_s:,.0f}")
            if due and st["batch"] < n_batches[epoch]:
                st["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                tok0 = 0
                checkpoint()
            if on_step is not None:
                on_step(dict(epoch=epoch, batch=st["batch"], step=st["step"], loss=loss_v, optimizer=opt, model=model))
        bar.close()
        elapsed = time.perf_counter() - t0
        st["seconds"] += elapsed
        valid_loss = evaluate_lm(model, valid, device=device, bf16=cfg.bf16) if valid is not None else None
        rec = dict(
            kind="epoch", epoch=epoch, step=st["step"], train_loss=st["ep_loss"] / max(st["ep_tokens"], 1),
            valid_loss=valid_loss, valid_ppl=math.exp(valid_loss) if valid_loss is not None else None,
            tokens_per_second=tok0 / max(elapsed, 1e-9), lr=lr_now,
        )  # fmt: skip
        history.append(rec)
        log.info("lm epoch %d: %s", epoch, rec)
        if cfg.keep_best and valid_loss is not None and valid_loss < st["best_loss"]:
            st.update(best_loss=valid_loss, best_epoch=epoch)
            if run.writer:
                save_torch(model.state_dict(), best_path)
        st.update(epoch=epoch + 1, batch=0, ep_loss=0.0, ep_tokens=0)
        checkpoint()
        run.write_history(history)
        run.plot(history)

    epochs = [r for r in history if r["kind"] == "epoch"]
    last = kept = epochs[-1] if epochs else {}
    if cfg.keep_best and st["best_epoch"] >= 0:
        kept = epochs[st["best_epoch"]]
        if run.writer:
            model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    if run.writer:
        save_torch(model.state_dict(), run.out_dir / "model.pt")
    return dict(
        valid_loss=kept.get("valid_loss"), valid_ppl=kept.get("valid_ppl"), train_loss=kept.get("train_loss"),
        train_tokens=st["train_tokens"], seconds=st["seconds"], tokens_per_second=st["train_tokens"] / max(st["seconds"], 1e-9),
        epochs=cfg.epochs, steps=st["step"], kept_epoch=kept.get("epoch"), last_valid_ppl=last.get("valid_ppl"),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Classifier


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
def _evaluate_classifier(model: Classifier, batches: ClassifierBatches, device: str, bf16: bool, weight: Tensor | None,
                         score: ScoreFn | None = None) -> tuple[float, float, float]:
    """(mean cross-entropy, accuracy, score) over labelled batches; score is `score(y, pred)` or the accuracy."""
    was_training = model.training
    model.eval()
    loss, ys, preds = 0.0, [], []
    for x, lengths, y, _ in batches.batches(0):
        x, lengths, y = x.to(device), lengths.to(device), y.to(device)
        with _autocast(device, bf16):
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


def train_classifier(
    model: Classifier,
    train: ClassifierBatches,
    valid: ClassifierBatches | None,
    cfg: ClassifierTrainConfig,
    out_dir: Path,
    *,
    n_classes: int,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    on_step: StepHook | None = None,
    score: ScoreFn | None = None,
) -> dict:
    """Fine-tune a classifier with gradual unfreezing, discriminative lrs and one STLR cycle per stage.

    Keeps the epoch with the best valid `score(y, pred)` (the task metric; accuracy when None; the last
    epoch without `valid`) as model.pt.
    Resumes from out_dir/ckpt/last.pt; `on_step` as in `train_lm`. Returns a summary dict.
    """
    run = _Run(out_dir, cfg.checkpoint_minutes)
    best_path = run.out_dir / "ckpt" / "best.pt"
    model.to(device)
    groups = classifier_layer_groups(model)
    n_groups = len(groups)
    plan = unfreeze_plan(n_groups, cfg.epochs) if cfg.gradual_unfreezing else [n_groups] * cfg.epochs
    lrs_by_epoch = [discriminative_lrs(top, n_groups, cfg.lr_decay) for top in stage_peak_lrs(plan, cfg.lr, cfg.stage_lrs)]
    n_batches = [_cap(len(train), cfg.max_batches_per_epoch) for _ in range(cfg.epochs)]
    stages = _stages(plan, n_batches)
    log_every = max(1, sum(n_batches) // 100)
    opt = _adamw(groups, discriminative_lrs(cfg.lr, n_groups, cfg.lr_decay), cfg.betas, cfg.wd)  # set per step below
    weight = _class_weights(train, n_classes).to(device) if cfg.class_weights else None
    st = dict(epoch=0, batch=0, step=0, ep_loss=0.0, ep_n=0, ep_correct=0, win_loss=0.0, win_n=0, seconds=0.0,
              best_acc=-1.0, best_epoch=-1, train_docs=0)  # fmt: skip
    history: list[dict] = []
    _seed_all(seed)
    if (ck := run.load(device)) is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        st, history = ck["state"], ck["history"]
        _set_rng_state(ck["rng"])

    def checkpoint() -> None:
        run.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), state=dict(st), history=history,
                      rng=_rng_state(), config=asdict(cfg)))  # fmt: skip

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
                with _autocast(device, cfg.bf16):
                    logits = model(x, lengths).float()
                loss = F.cross_entropy(logits, y, weight=weight)
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
        valid_loss, valid_acc, valid_score = (_evaluate_classifier(model, valid, device, cfg.bf16, weight, score)
                                              if valid is not None else (None, None, None))
        rec = dict(
            kind="epoch", epoch=epoch, step=st["step"], trainable_groups=n_train, train_loss=st["ep_loss"] / max(st["ep_n"], 1),
            train_accuracy=st["ep_correct"] / max(st["ep_n"], 1), valid_loss=valid_loss, valid_accuracy=valid_acc,
            valid_score=valid_score,
            lr=opt.param_groups[-1]["lr"],
        )  # fmt: skip
        history.append(rec)
        log.info("classifier epoch %d: %s", epoch, rec)
        kept = valid_score if valid_score is not None else float(epoch)  # without valid: keep the last
        if kept > st["best_acc"]:
            st["best_acc"], st["best_epoch"] = kept, epoch
            save_torch(model.state_dict(), best_path)
        st.update(epoch=epoch + 1, batch=0, ep_loss=0.0, ep_n=0, ep_correct=0)
        checkpoint()
        run.write_history(history)
        run.plot(history, "valid_score")

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
        train_docs=st["train_docs"], plan=plan,
    )  # fmt: skip


@torch.no_grad()
def predict_proba(model: Classifier, batches: ClassifierBatches, *, device: str = "cpu", bf16: bool = True) -> np.ndarray:
    """Softmax probabilities in the ORIGINAL document order (via idx), shape (n_docs, n_classes)."""
    was_training = model.training
    model.eval()
    model.to(device)
    idxs, probs = [], []
    for x, lengths, _, idx in batches.batches(0):
        with _autocast(device, bf16):
            logits = model(x.to(device), lengths.to(device)).float()
        probs.append(logits.softmax(1).cpu())
        idxs.append(torch.as_tensor(idx).long().cpu())
    model.train(was_training)
    idx, p = torch.cat(idxs), torch.cat(probs)
    out = torch.full((int(idx.max()) + 1, p.size(1)), float("nan"))
    out[idx] = p
    return out.numpy()
