"""LM training throughput: our AWD-LSTM against a plain fused nn.LSTM stack of the same shapes.

A step is forward + cross-entropy (+ AR/TAR for the AWD-LSTM) + backward + grad clipping + AdamW step, on
random token ids. Each implementation runs in its own spawned process, so the peak memory is its own (peak
RSS on CPU, torch.cuda.max_memory_allocated on GPU). Each implementation runs at every precision asked for
(`precision.resolve_precision`: "fp32", "bf16", "auto", or the default "cuda-bf16", bf16 autocast on CUDA only).

`ulmfit-multi bench lm` runs `bench_lm`; `bench/bench_lm.py` runs it too, with fastai's AWD_LSTM added as
an optional third implementation (a builder passed in `builders`: the package itself never imports fastai).

Usage (Python):
    from ulmfit_multi.bench import bench_lm
    bench_lm(emb=256, hidden=512, device="cuda", steps=40)
    bench_lm(emb=256, hidden=512, precisions=("fp32", "bf16"))   # results "ulmfit_multi@fp32", "ulmfit_multi@bf16", ...
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource
import time
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .precision import autocast, cpu_has_native_bf16, resolve_precision

StepLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# (vocab, emb, hidden, layers, weight_p) -> (model, step_loss(model, x, y) -> loss); must be a module-level
# function so that a spawned process can receive it
Builder = Callable[[int, int, int, int, float], tuple[nn.Module, StepLoss]]


class PlainLSTMLM(nn.Module):
    """The same shapes with no regularization: embedding, fused nn.LSTM per layer, tied decoder."""

    def __init__(self, vocab: int, emb: int, hidden: int, layers: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        sizes = [emb] + [hidden] * (layers - 1) + [emb]
        self.rnns = nn.ModuleList([nn.LSTM(sizes[i], sizes[i + 1], 1, batch_first=True) for i in range(layers)])
        self.decoder = nn.Linear(emb, vocab)
        self.decoder.weight = self.encoder.weight
        self.hidden: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, time, vocab); the hidden state carries over (detached) to the next call."""
        out, new = self.encoder(x), []
        for i, rnn in enumerate(self.rnns):
            out, h = rnn(out, None if self.hidden is None else self.hidden[i])
            new.append(tuple(t.detach() for t in h))
        self.hidden = new
        return self.decoder(out)


def _ulmfit_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from .train import ar_tar

    out = model(x, y)  # as train_lm computes it
    return out.loss / y.numel() + ar_tar(out, 2.0, 1.0)


def _plain_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())


def build_ulmfit_multi(vocab: int, emb: int, hidden: int, layers: int, weight_p: float) -> tuple[nn.Module, StepLoss]:
    """Our AWD-LSTM language model and its training loss (cross-entropy + AR/TAR)."""
    from .config import ModelSection
    from .model import build_language_model

    section = ModelSection(emb_size=emb, hidden_size=hidden, n_layers=layers, weight_p=weight_p)
    return build_language_model(section, vocab), _ulmfit_loss


def build_nn_lstm(vocab: int, emb: int, hidden: int, layers: int, weight_p: float) -> tuple[nn.Module, StepLoss]:
    """A plain fused nn.LSTM stack of the same shapes (no dropouts: `weight_p` is ignored) and its loss."""
    return PlainLSTMLM(vocab, emb, hidden, layers), _plain_loss


BUILDERS: dict[str, Builder] = {"ulmfit_multi": build_ulmfit_multi, "nn_lstm": build_nn_lstm}


def bench_one(builder: Builder, impl: str, vocab: int, emb: int, hidden: int, layers: int, bptt: int, bs: int,
              steps: int, warmup: int, device: str, weight_p: float, threads: int, precision: str = "cuda-bf16") -> dict:
    """Time `steps` training steps of one implementation (after `warmup` steps) at `precision`, in this process."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    try:
        model, step_loss = builder(vocab, emb, hidden, layers, weight_p)
    except ImportError as e:  # an optional implementation that is not installed
        return dict(impl=impl, precision=precision, skipped=f"{type(e).__name__}: {e}")
    model.to(device).train()
    if hasattr(model, "reset"):  # fastai keeps its LSTM state in tensors made at construction, on the CPU
        model.reset()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.7, 0.99), weight_decay=0.01)
    cuda = device.startswith("cuda")
    asked, precision = precision, resolve_precision(precision, device)
    data = torch.randint(1, vocab, (warmup + steps, bs, bptt + 1), device=device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = 0.0
    loss = torch.zeros(())
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y = data[i, :, :-1], data[i, :, 1:]
        with autocast(device, precision):
            loss = step_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.4)
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if cuda
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(impl=impl, precision=precision, precision_asked=asked, tokens_per_second=bs * bptt * steps / seconds, seconds=seconds, steps=steps,
                peak_memory_mb=peak_mb, memory_kind="cuda max_memory_allocated" if cuda else "peak RSS",
                params=sum(p.numel() for p in model.parameters()), final_loss=loss.item())


def format_result(r: dict) -> str:
    """One line for one implementation's result (or why it was skipped)."""
    asked, ran = r.get("precision_asked", ""), r.get("precision", "")
    name = f"{r['impl']:>14} {ran if asked in ('', ran) else f'{asked}={ran}':>14}"
    if "skipped" in r:
        return f"{name}: skipped ({r['skipped']})"
    return (f"{name}: {r['tokens_per_second']:>10,.0f} tok/s   {r['peak_memory_mb']:>8,.0f} MB "
            f"{r['memory_kind']}   ({r['steps']} steps in {r['seconds']:.1f}s)")


def bench_lm(vocab: int = 8000, emb: int = 256, hidden: int = 512, layers: int = 3, bptt: int = 70, bs: int = 32,
             steps: int = 20, device: str = "cpu", weight_p: float = 0.2, warmup: int = 3, threads: int = 2,
             impls: tuple[str, ...] = tuple(BUILDERS), isolate: bool = True, verbose: bool = True,
             builders: Mapping[str, Builder] | None = None, precisions: tuple[str, ...] = ("cuda-bf16",)) -> dict:
    """Benchmark LM training tokens/s and peak memory of each implementation in `impls` at each of `precisions`.

    `builders` maps implementation names to builders (default: `BUILDERS`, ours and the plain LSTM); with
    `isolate` each runs in its own spawned process. Returns {"config": {...}, "results": {key: result}}, the
    key the implementation's name, or with several precisions "<impl>@<precision as given>"; each result
    says the resolved precision ("fp32" / "bf16") it ran at.
    """
    builders = dict(BUILDERS if builders is None else builders)
    unknown = [i for i in impls if i not in builders]
    if unknown:
        raise ValueError(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(builders)}")
    for p in precisions:
        resolve_precision(p, device)  # ValueError on an unknown one, before anything runs
    args = (vocab, emb, hidden, layers, bptt, bs, steps, warmup, device, weight_p, threads)
    results = {}
    for precision in precisions:
        for impl in impls:
            if isolate:  # own process: a clean peak RSS, no allocator state shared with the previous impl
                ctx = multiprocessing.get_context("spawn")
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                    r = ex.submit(bench_one, builders[impl], impl, *args, precision).result()
            else:
                r = bench_one(builders[impl], impl, *args, precision)
            results[impl if len(precisions) == 1 else f"{impl}@{precision}"] = r
            if verbose:
                print(format_result(r), flush=True)
    return dict(config=dict(vocab=vocab, emb=emb, hidden=hidden, layers=layers, bptt=bptt, bs=bs, steps=steps,
                            warmup=warmup, device=device, weight_p=weight_p, threads=threads,
                            precisions=list(precisions), cpu_native_bf16=cpu_has_native_bf16(),
                            torch=torch.__version__),
                results=results)
