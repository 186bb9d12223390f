"""LM training throughput: our AWD-LSTM vs a plain fused nn.LSTM stack vs fastai's AWD_LSTM (if installed).

Usage:
    python bench/bench_lm.py                      # CPU, vocab 8000, emb 256, hidden 512, 3 layers, bptt 70, bs 32
    python bench/bench_lm.py --device cuda --steps 50 --threads 0

A step is forward + cross-entropy (+ AR/TAR for the AWD-LSTMs) + backward + grad clipping + AdamW step,
on random token ids. Each implementation runs in its own spawned process, so the peak memory is its own
(peak RSS on CPU, torch.cuda.max_memory_allocated on GPU). On CUDA the step runs under bf16 autocast.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

IMPLS = ("ulmfit_multi", "nn_lstm", "fastai")


class PlainLSTMLM(nn.Module):
    """The same shapes with no regularization: embedding, fused nn.LSTM per layer, tied decoder."""

    def __init__(self, vocab: int, emb: int, hidden: int, layers: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        sizes = [emb] + [hidden] * (layers - 1) + [emb]
        self.rnns = nn.ModuleList([nn.LSTM(sizes[i], sizes[i + 1], 1, batch_first=True) for i in range(layers)])
        self.decoder = nn.Linear(emb, vocab)
        self.decoder.weight = self.encoder.weight
        self.hidden = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, new = self.encoder(x), []
        for i, rnn in enumerate(self.rnns):
            out, h = rnn(out, None if self.hidden is None else self.hidden[i])
            new.append(tuple(t.detach() for t in h))
        self.hidden = new
        return self.decoder(out)


def _build(impl: str, vocab: int, emb: int, hidden: int, layers: int, weight_p: float):
    """(model, step_loss(model, x, y) -> loss) for one implementation."""
    if impl == "ulmfit_multi":
        from ulmfit_multi.model import ModelConfig, build_language_model
        from ulmfit_multi.train import ar_tar

        m = build_language_model(ModelConfig(vocab, emb, hidden, layers, weight_p=weight_p))

        def loss(m, x, y):
            out = m(x)
            return F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten()) + ar_tar(out, 2.0, 1.0)

        return m, loss
    if impl == "nn_lstm":
        m = PlainLSTMLM(vocab, emb, hidden, layers)
        return m, lambda m, x, y: F.cross_entropy(m(x).float().flatten(0, 1), y.flatten())
    if impl == "fastai":
        from fastai.text.models.awdlstm import AWD_LSTM  # noqa: PLC0415 (optional)
        from fastai.text.models.core import LinearDecoder, SequentialRNN

        enc = AWD_LSTM(vocab, emb, hidden, layers, pad_token=0, hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=weight_p)
        m = SequentialRNN(enc, LinearDecoder(vocab, emb, output_p=0.1, tie_encoder=enc.encoder))

        def loss(m, x, y):
            logits, raw, dropped = m(x)
            reg = 2.0 * dropped.float().pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
            return F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) + reg

        return m, loss
    raise ValueError(f"unknown impl {impl!r}; known: {IMPLS}")


def _bench_one(impl: str, vocab: int, emb: int, hidden: int, layers: int, bptt: int, bs: int, steps: int, warmup: int,
               device: str, weight_p: float, threads: int) -> dict:  # fmt: skip
    """Time `steps` training steps of one implementation (after `warmup` steps)."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    try:
        model, step_loss = _build(impl, vocab, emb, hidden, layers, weight_p)
    except ImportError as e:
        return dict(impl=impl, skipped=f"{type(e).__name__}: {e}")
    model.to(device).train()
    if hasattr(model, "reset"):  # fastai keeps its LSTM state in tensors made at construction, on the CPU
        model.reset()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.7, 0.99), weight_decay=0.01)
    cuda = device.startswith("cuda")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    data = torch.randint(1, vocab, (warmup + steps, bs, bptt + 1), device=device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y = data[i, :, :-1], data[i, :, 1:]
        with amp:
            loss = step_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.4)
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(impl=impl, tokens_per_second=bs * bptt * steps / seconds, seconds=seconds, steps=steps,
                peak_memory_mb=peak_mb, memory_kind="cuda max_memory_allocated" if cuda else "peak RSS",
                params=sum(p.numel() for p in model.parameters()), final_loss=loss.item())  # fmt: skip


def bench_lm(vocab: int = 8000, emb: int = 256, hidden: int = 512, layers: int = 3, bptt: int = 70, bs: int = 32, steps: int = 20,
             device: str = "cpu", weight_p: float = 0.2, warmup: int = 3, threads: int = 2,
             impls: tuple[str, ...] = IMPLS, isolate: bool = True, verbose: bool = True) -> dict:  # fmt: skip
    """Benchmark LM training tokens/s and peak memory for each implementation; returns {impl: result}."""
    args = (vocab, emb, hidden, layers, bptt, bs, steps, warmup, device, weight_p, threads)
    results = {}
    for impl in impls:
        if isolate:  # own process: a clean peak RSS, no allocator state shared with the previous impl
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                r = ex.submit(_bench_one, impl, *args).result()
        else:
            r = _bench_one(impl, *args)
        results[impl] = r
        if verbose:
            if "skipped" in r:
                print(f"{impl:>14}: skipped ({r['skipped']})")
            else:
                print(f"{impl:>14}: {r['tokens_per_second']:>10,.0f} tok/s   {r['peak_memory_mb']:>8,.0f} MB {r['memory_kind']}"
                      f"   ({r['steps']} steps in {r['seconds']:.1f}s)")  # fmt: skip
    return dict(config=dict(vocab=vocab, emb=emb, hidden=hidden, layers=layers, bptt=bptt, bs=bs, steps=steps, warmup=warmup,
                            device=device, weight_p=weight_p, threads=threads, torch=torch.__version__), results=results)  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Command line: python bench/bench_lm.py [--device cuda] [--json out.json]."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("vocab", 8000), ("emb", 256), ("hidden", 512), ("layers", 3), ("bptt", 70), ("bs", 32), ("steps", 20),
                          ("warmup", 3), ("threads", 2)]:  # fmt: skip
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--weight-p", type=float, default=0.2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    ap.add_argument("--no-isolate", action="store_true", help="run every impl in this process")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args(argv)
    out = bench_lm(a.vocab, a.emb, a.hidden, a.layers, a.bptt, a.bs, a.steps, a.device, a.weight_p, a.warmup, a.threads,
                   tuple(a.impls.split(",")), not a.no_isolate)  # fmt: skip
    if a.json:
        from ulmfit_multi.atomic import write_json

        write_json(a.json, out)
    return out


if __name__ == "__main__":
    print(json.dumps(main()["config"]))
