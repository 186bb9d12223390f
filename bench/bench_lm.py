"""LM training throughput: our AWD-LSTM vs a plain fused nn.LSTM stack vs fastai's AWD_LSTM (if installed).

Usage:
    python bench/bench_lm.py                      # CPU, vocab 8000, emb 256, hidden 512, 3 layers, bptt 70, bs 32
    python bench/bench_lm.py --device cuda --steps 50 --threads 0
    python bench/bench_lm.py --impls ulmfit_multi,nn_lstm --json out.json
    python bench/bench_lm.py --precision fp32,bf16   # every implementation at both (bf16: CPU or CUDA autocast)

The benchmark itself is `ulmfit_multi.bench.bench_lm` (also `ulmfit-multi bench lm`); this script adds
fastai's AWD_LSTM as an optional third implementation (skipped when fastai is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ulmfit_multi.bench import BUILDERS, StepLoss, bench_lm  # noqa: E402

IMPLS = ("ulmfit_multi", "nn_lstm", "fastai")


def _fastai_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, raw, dropped = model(x)
    reg = 2.0 * dropped.float().pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) + reg


def build_fastai(vocab: int, emb: int, hidden: int, layers: int, weight_p: float) -> tuple[nn.Module, StepLoss]:
    """fastai's AWD_LSTM with a tied linear decoder and AR/TAR (ImportError when fastai is not installed)."""
    from fastai.text.models.awdlstm import AWD_LSTM  # optional
    from fastai.text.models.core import LinearDecoder, SequentialRNN

    enc = AWD_LSTM(vocab, emb, hidden, layers, pad_token=0, hidden_p=0.15, input_p=0.25, embed_p=0.02,
                   weight_p=weight_p)
    return SequentialRNN(enc, LinearDecoder(vocab, emb, output_p=0.1, tie_encoder=enc.encoder)), _fastai_loss


def main(argv: list[str] | None = None) -> dict:
    """Command line: python bench/bench_lm.py [--device cuda] [--impls a,b] [--json out.json]."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("vocab", 8000), ("emb", 256), ("hidden", 512), ("layers", 3), ("bptt", 70), ("bs", 32),
                          ("steps", 20), ("warmup", 3), ("threads", 2)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--weight-p", type=float, default=0.2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="cuda-bf16",
                    help="comma-separated: fp32, bf16, auto (bf16 on CUDA and on CPUs with native bf16), "
                         "cuda-bf16 (bf16 on CUDA only; the default)")
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    ap.add_argument("--no-isolate", action="store_true", help="run every impl in this process")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args(argv)
    out = bench_lm(a.vocab, a.emb, a.hidden, a.layers, a.bptt, a.bs, a.steps, a.device, a.weight_p, a.warmup,
                   a.threads, tuple(a.impls.split(",")), not a.no_isolate,
                   builders={**BUILDERS, "fastai": build_fastai},
                   precisions=tuple(p.strip() for p in a.precision.split(",") if p.strip()))
    if a.json:
        from ulmfit_multi.atomic import write_json

        write_json(a.json, out)
    return out


if __name__ == "__main__":
    print(json.dumps(main()["config"]))
