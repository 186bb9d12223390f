"""Classifier inference speed: our ULMFiT classifier (fp32, bf16, int8) against fastai's text classifier.

Usage:
    python bench/bench_classify.py --split work/store/encode/<fp>/tasks/mahasent-mr/test
    python bench/bench_classify.py --docs 3000 --mean-len 20          # synthetic documents, no run needed
    python bench/bench_classify.py --split DIR --impls ulmfit_multi,fastai --precision fp32,bf16 --threads 1

Both models have the same sizes and random weights (speed does not depend on what the weights learnt) and
classify the same token ids in the same length-sorted batches, in eval mode without gradients: ours through
`train_classifier.predict_proba` (right padding, per-document masks), fastai's `get_text_classifier` model
the way `Learner.get_preds` calls it per batch (padded by fastai's `pad_input_chunk`, as its
SortedDL pads), without fastai's
DataLoader around it. `int8` is ours after the dynamic quantization `ulmfit-multi predict --quantize int8`
applies. Each implementation runs in this process one after the other; figures from a busy machine are not
measurements.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ulmfit_multi.config import ModelSection  # noqa: E402
from ulmfit_multi.model import build_classifier  # noqa: E402
from ulmfit_multi.precision import autocast, resolve_precision  # noqa: E402
from ulmfit_multi.predict import quantize_int8  # noqa: E402
from ulmfit_multi.tokens import ClassifierBatches, TokenStore  # noqa: E402
from ulmfit_multi.train_classifier import predict_proba  # noqa: E402


def load_docs(split: Path | None, n: int, mean_len: int, vocab: int) -> list[np.ndarray]:
    """The documents of an encoded split (`TokenStore`), or `n` synthetic ones of geometric lengths."""
    if split is not None:
        store = TokenStore.open(split)
        return [np.asarray(store.doc(i), dtype=np.int64) for i in range(len(store))]
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.geometric(1 / mean_len, n), 1, 20 * mean_len)
    return [rng.integers(4, vocab, int(k)) for k in lengths]


def ours(cfg: ModelSection, vocab: int, n_classes: int, max_len: int, quantize: bool) -> nn.Module:
    """Our classifier with random weights, in eval mode; int8 dynamic quantization when asked."""
    torch.manual_seed(0)
    model = build_classifier(cfg, vocab, n_classes, max_len=max_len).eval()
    return quantize_int8(model) if quantize else model  # what `predict --quantize int8` does


def run_ours(model: nn.Module, docs: list[np.ndarray], bs: int, max_len: int, precision: str) -> float:
    """Seconds to classify every document (after one warm-up batch)."""
    batches = ClassifierBatches(docs, None, bs, shuffle=False, max_len=max_len)
    predict_proba(model, ClassifierBatches(docs[:bs], None, bs, shuffle=False, max_len=max_len), precision=precision)
    started = time.perf_counter()
    with torch.no_grad():
        predict_proba(model, batches, precision=precision)
    return time.perf_counter() - started


def run_fastai(cfg: ModelSection, docs: list[np.ndarray], vocab: int, n_classes: int, bs: int, max_len: int,
               precision: str) -> float:
    """Seconds for fastai's classifier over the same batches, left-padded as fastai's SortedDL pads them."""
    from fastai.text.data import pad_input_chunk  # optional
    from fastai.text.models.awdlstm import AWD_LSTM, awd_lstm_clas_config
    from fastai.text.models.core import get_text_classifier

    torch.manual_seed(0)
    config = {**awd_lstm_clas_config, "emb_sz": cfg.emb_size, "n_hid": cfg.hidden_size, "n_layers": cfg.n_layers,
              "pad_token": 0}
    model = get_text_classifier(AWD_LSTM, vocab, n_classes, seq_len=cfg.bptt, config=config, pad_idx=0,
                                max_len=max_len).eval()
    seqs = [d[-max_len:] for d in docs]
    order = np.argsort([-len(s) for s in seqs], kind="stable")
    batches = []
    for i in range(0, len(order), bs):
        # fastai's own padding: whole bptt chunks of padding first, the rest after the text (its
        # SentenceEncoder counts a chunk's real rows from the chunk's first column)
        padded = pad_input_chunk([(torch.from_numpy(seqs[j]), 0) for j in order[i:i + bs]], pad_idx=0,
                                 pad_first=True, seq_len=cfg.bptt)
        batches.append(torch.stack([x for x, _ in padded]))

    def classify(xs: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for x in xs:
                model.reset()
                with autocast("cpu", precision):
                    logits = model(x)[0]
                logits.float().softmax(1)

    classify(batches[:1])
    started = time.perf_counter()
    classify(batches)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    """Command line: python bench/bench_classify.py [--split DIR] [--impls a,b] [--precision fp32,bf16]."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=Path, help="an encoded task split folder (tokens, offsets, labels)")
    for name, default in [("docs", 3000), ("mean-len", 20), ("vocab", 15000), ("emb", 256), ("hidden", 512),
                          ("layers", 3), ("bptt", 70), ("bs", 64), ("max-len", 400), ("classes", 3), ("threads", 2)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--impls", default="ulmfit_multi,ulmfit_multi-int8,fastai")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    docs = load_docs(a.split, a.docs, a.mean_len, a.vocab)
    cfg = ModelSection(emb_size=a.emb, hidden_size=a.hidden, n_layers=a.layers, bptt=a.bptt)
    tokens = sum(min(len(d), a.max_len) for d in docs)
    print(f"{len(docs)} documents, {tokens:,} tokens, batch {a.bs}, {a.threads} threads, "
          f"vocab {a.vocab} / emb {a.emb} / hidden {a.hidden}")
    results = {}
    for impl in a.impls.split(","):
        for precision in a.precision.split(","):
            if impl.endswith("int8") and precision != "fp32":
                continue  # dynamic int8 replaces the matrix products; no autocast on top
            resolved = resolve_precision(precision, "cpu")
            key = f"{impl}@{precision}"
            if impl == "fastai":
                try:
                    seconds = run_fastai(cfg, docs, a.vocab, a.classes, a.bs, a.max_len, resolved)
                except ImportError as e:
                    results[key] = {"skipped": f"fastai is not installed ({e})"}
                    print(f"{impl:>18} {precision:>5}: skipped, fastai is not installed")
                    continue
            else:
                model = ours(cfg, a.vocab, a.classes, a.max_len, quantize=impl.endswith("int8"))
                seconds = run_ours(model, docs, a.bs, a.max_len, resolved)
            results[key] = {"seconds": seconds, "documents_per_second": len(docs) / seconds}
            print(f"{impl:>18} {precision:>5}: {len(docs) / seconds:10,.1f} documents/s ({seconds:.2f} s)")
    out = {"documents": len(docs), "tokens": tokens, "args": {k: str(v) for k, v in vars(a).items()},
           "torch": torch.__version__, "results": results}
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
