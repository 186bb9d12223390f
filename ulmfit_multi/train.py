"""Training the AWD-LSTM language model (pretraining / fine-tuning), and the helpers both training loops share.

Usage (Python; the pipeline's `pretrain` and `finetune_lm` stages call this; the classifier's loop is in
`train_classifier`):
    summary = train_lm(build_language_model(cfg.model, vocab_size), train_stream, valid_stream, cfg.pretrain, out_dir)

`cfg.pretrain` or `cfg.finetune_lm` is the recipe's own section (`config.LMSection`): every setting a
recipe can give reaches the loop unchanged.

The loop writes into `out_dir`: ckpt/last.pt (atomic, at every epoch end and every `checkpoint_minutes`;
an existing one is resumed from, exactly), history.jsonl, learning_curve.png and model.pt: the last
epoch's weights, or with `keep_best` the epoch of lowest valid loss (kept in ckpt/best.pt as it trains).
A resumed run reproduces the uninterrupted one (same batches, RNG states, hidden state, optimizer state
and loss accumulators are restored).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .atomic import atomic_write, save_torch
from .config import LMSection
from .model import LanguageModel, LMOutput, lm_layer_groups
from .precision import autocast, resolve_precision
from .schedule import discriminative_lrs, stlr

log = logging.getLogger(__name__)
StepHook = Callable[[dict[str, Any]], None]
EpochHook = Callable[[dict[str, Any]], None]
CheckpointHook = Callable[[Path], None]


class LMStream(Protocol):
    """Language-model batches: (x, y) (bs, seq_len), y = x shifted by one; the lr is scaled by seq_len / `bptt`."""

    bptt: int

    def batches(self, epoch: int, start: int = 0) -> Iterable[tuple[Tensor, Tensor]]: ...
    def num_batches(self, epoch: int) -> int: ...


# ---------------------------------------------------------------------------------------------
# Shared helpers


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global generators' states (Python, NumPy, torch, CUDA when present), for a checkpoint."""
    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    """Restore the generators' states saved by `rng_state`."""
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


def cap_batches(n: int, limit: int) -> int:
    """`n` batches, at most `limit` of them when `limit` > 0."""
    return min(n, limit) if limit > 0 else n


def adamw(groups: list[list[nn.Parameter]], lrs: list[float], betas: tuple[float, float], wd: float) -> torch.optim.AdamW:
    """AdamW with one parameter group per layer group, each at its own learning rate."""
    return torch.optim.AdamW([{"params": g, "lr": lr} for g, lr in zip(groups, lrs)], lr=lrs[-1], betas=tuple(betas), weight_decay=wd)


class TrainRun:
    """Checkpoint, history and plot bookkeeping shared by the LM and classifier loops."""

    def __init__(self, out_dir: Path, checkpoint_minutes: float, writer: bool = True,
                 on_checkpoint: CheckpointHook | None = None):
        self.out_dir, self.writer = Path(out_dir), writer  # writer False: a data-parallel rank > 0 writes nothing
        self.ckpt_path = self.out_dir / "ckpt" / "last.pt"
        self.every_s = checkpoint_minutes * 60
        self.last_save = time.monotonic()
        self.on_checkpoint = on_checkpoint  # called with each checkpoint file written (uploaded to a remote store)

    def load(self, device: str) -> dict | None:
        """The checkpoint ckpt/last.pt to resume from, or None."""
        if not self.ckpt_path.exists():
            return None
        log.info("resuming from %s", self.ckpt_path)
        return torch.load(self.ckpt_path, map_location=device, weights_only=False)

    def save(self, ckpt: dict) -> None:
        """Write ckpt/last.pt atomically (nothing on a rank > 0) and restart the checkpoint clock."""
        self.save_file(ckpt, self.ckpt_path)
        self.last_save = time.monotonic()

    def save_file(self, obj: Any, path: Path) -> None:
        """`save_torch(obj, path)` of a checkpoint file (nothing on a rank > 0), then `on_checkpoint(path)`."""
        if self.writer:
            save_torch(obj, path)
            if self.on_checkpoint is not None:
                self.on_checkpoint(path)

    def due(self) -> bool:
        """Whether `checkpoint_minutes` have passed since the last save."""
        return time.monotonic() - self.last_save >= self.every_s

    def write_history(self, history: list[dict]) -> None:
        """Rewrite history.jsonl with every step and epoch record so far."""
        if not self.writer:
            return
        with atomic_write(self.out_dir / "history.jsonl") as f:
            for rec in history:
                f.write(json.dumps(rec) + "\n")

    def plot(self, title: str = "") -> None:
        """learning_curve.png from history.jsonl (`plots.plot_learning_curves`: losses, and the valid task
        metric when there is one)."""
        if not self.writer:
            return
        from .plots import plot_learning_curves

        plot_learning_curves(self.out_dir / "history.jsonl", self.out_dir / "learning_curve.png", title=title)


def ar_tar(out: LMOutput, alpha: float, beta: float) -> Tensor:
    """AR on the dropped last-layer output + TAR on the raw one (Merity et al. 2017, section 4.6)."""
    reg = out.raw.new_zeros((), dtype=torch.float32)
    if alpha:
        reg = reg + alpha * out.dropped.float().pow(2).mean()
    if beta and out.raw.size(1) > 1:
        reg = reg + beta * (out.raw[:, 1:] - out.raw[:, :-1]).float().pow(2).mean()
    return reg


# ---------------------------------------------------------------------------------------------
# Language model


@torch.no_grad()
def evaluate_lm(model: LanguageModel, stream: LMStream, *, device: str = "cpu", max_batches: int = 0,
                precision: str = "cuda-bf16") -> float:
    """Mean per-token cross-entropy over the stream (epoch 0), hidden state carried across batches; the
    forward pass at `precision` (`precision.resolve_precision`), the loss in fp32."""
    was_training = model.training
    model.eval()
    model.reset()
    total, n_tok = 0.0, 0
    batches = stream.batches(0)
    if max_batches > 0:
        batches = itertools.islice(batches, max_batches)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            total += model(x, y).loss.item()
        n_tok += y.numel()
    model.reset()
    model.train(was_training)
    return total / max(n_tok, 1)


def train_lm(
    model: LanguageModel,
    train: LMStream,
    valid: LMStream | None,
    cfg: LMSection,
    out_dir: Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    precision: str = "cuda-bf16",
    on_step: StepHook | None = None,
    on_epoch: EpochHook | None = None,
    on_checkpoint: CheckpointHook | None = None,
) -> dict:
    """Train an LM with STLR over all steps, AdamW(betas), clipping, AR/TAR and variable-BPTT lr scaling.

    `cfg` is a recipe's `pretrain` or `finetune_lm` section: epochs, lr (the top group's peak), wd, clip,
    alpha/beta (AR/TAR), betas, cut_frac/ratio (STLR), discriminative with lr_decay (group k below the top
    at lr / lr_decay**k), max_batches_per_epoch, checkpoint_minutes and keep_best (model.pt is the epoch of
    lowest valid loss); its batch_size is the streams'. The lr is scaled by each batch's seq_len / `train.bptt`.
    `precision`: a `model.precision` value (`precision.resolve_precision`: bf16 autocast or none; the default,
    bf16 on CUDA only); the resolved "fp32" / "bf16" is in the summary and the epoch records.
    Resumes from out_dir/ckpt/last.pt when present. `on_step(info)` runs after every step (and after its
    checkpoint, if one was due); raising there interrupts training (tests). `on_epoch(record)` runs after
    each finished epoch (and its checkpoint), on rank 0 only under data-parallel training, with a copy of
    the epoch's history record (kind, epoch, step, train_loss, valid_loss, valid_ppl, tokens_per_second,
    lr) plus epochs_total. `on_checkpoint(path)` runs after each checkpoint file (ckpt/last.pt, ckpt/best.pt)
    is written (the stage engine uploads it to a remote store). Returns a summary dict.
    """
    rank, world = _dist_rank_world()
    precision = resolve_precision(precision, device)
    run = TrainRun(out_dir, cfg.checkpoint_minutes, writer=rank == 0, on_checkpoint=on_checkpoint)
    model.to(device)
    groups = lm_layer_groups(model)
    base_lrs = discriminative_lrs(cfg.lr, len(groups), cfg.lr_decay) if cfg.discriminative else [cfg.lr] * len(groups)
    opt = adamw(groups, base_lrs, cfg.betas, cfg.wd)
    n_batches = [cap_batches(train.num_batches(e), cfg.max_batches_per_epoch) for e in range(cfg.epochs)]
    total_steps = sum(n_batches)
    log_every = max(1, total_steps // 100)
    bptt = train.bptt
    params = [p for g in groups for p in g]
    st = dict(epoch=0, batch=0, step=0, ep_loss=0.0, ep_tokens=0, win_loss=0.0, win_tokens=0, train_tokens=0, seconds=0.0,
              best_loss=math.inf, best_epoch=-1)  # fmt: skip
    history: list[dict] = []
    best_path = run.out_dir / "ckpt" / "best.pt"
    seed_all(seed + rank)  # dropout masks differ per rank; weights are rank 0's (DDP broadcasts them)
    if (ck := run.load(device)) is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        st, history = {"best_loss": math.inf, "best_epoch": -1, **ck["state"]}, ck["history"]
        if ck.get("world_size", 1) != world:
            raise RuntimeError(f"{run.ckpt_path}: written by {ck.get('world_size', 1)} workers, resumed with "
                               f"{world}; resume with the same number or delete the checkpoint")
        model.encoder.hidden = ck["hidden"][rank] if world > 1 else ck["hidden"]
        set_rng_state(ck["rng"][rank] if world > 1 else ck["rng"])
    net: nn.Module = model
    if world > 1:  # gradients are averaged over ranks, each holding batch_size / world rows of the batch
        from torch.nn.parallel import DistributedDataParallel

        index = torch.device(device).index  # "cuda:1" -> 1; "cpu" and a bare "cuda" -> None
        net = DistributedDataParallel(model, device_ids=[index] if index is not None else None)

    def checkpoint() -> None:
        hidden, rng = model.encoder.hidden, rng_state()
        if world > 1:  # every rank carries its own rows' hidden state and RNG: gather them
            hidden, rng = _gather(_to_cpu(hidden), world), _gather(rng, world)
        run.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), state=dict(st), history=history,
                      hidden=hidden, rng=rng, world_size=world, config=asdict(cfg)))  # fmt: skip

    lr_now = base_lrs[-1]
    if st["epoch"] >= cfg.epochs:  # the finished run's checkpoint (a retry on another node downloaded it)
        run.write_history(history)
        run.plot("language model")
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
            with autocast(device, precision):
                out = net(x, y)  # the loss comes from the decoder without materialising fp32 logits
                loss = out.loss / y.numel()
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
        valid_loss = evaluate_lm(model, valid, device=device, precision=precision) if valid is not None else None
        rec = dict(
            kind="epoch", epoch=epoch, step=st["step"], train_loss=st["ep_loss"] / max(st["ep_tokens"], 1),
            valid_loss=valid_loss, valid_ppl=math.exp(valid_loss) if valid_loss is not None else None,
            tokens_per_second=tok0 / max(elapsed, 1e-9), lr=lr_now, precision=precision,
        )  # fmt: skip
        history.append(rec)
        log.info("lm epoch %d: %s", epoch, rec)
        if cfg.keep_best and valid_loss is not None and valid_loss < st["best_loss"]:
            st.update(best_loss=valid_loss, best_epoch=epoch)
            run.save_file(model.state_dict(), best_path)
        st.update(epoch=epoch + 1, batch=0, ep_loss=0.0, ep_tokens=0)
        checkpoint()
        run.write_history(history)
        run.plot("language model")
        if on_epoch is not None and run.writer:
            on_epoch({**rec, "epochs_total": cfg.epochs})

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
        precision=precision,
    )  # fmt: skip
