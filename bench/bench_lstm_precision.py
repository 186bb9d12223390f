"""LM pretraining on a real encoded corpus with the LSTMs in fp32 vs bf16: tokens/s and valid perplexity.

Usage (a GPU; the corpus is an `encode` stage output of any recipe run):
    python bench/bench_lstm_precision.py work/runs/ta-paper-b6bf2290/04-encode --epochs 2
    python bench/bench_lstm_precision.py DIR --emb 256 --hidden 512 --bs 32 --device cpu --epochs 1

Same seed, same batches, same model for both; only `ModelConfig.lstm_bf16` differs (the embedding and the
decoder run under bf16 autocast in both, on CUDA).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ulmfit_multi.model import ModelConfig, build_language_model  # noqa: E402
from ulmfit_multi.tokens import LMStream, TokenStore  # noqa: E402
from ulmfit_multi.train import LMTrainConfig, train_lm  # noqa: E402


def run(encode_dir: Path, lstm_bf16: bool, *, emb: int, hidden: int, bs: int, bptt: int, epochs: int, lr: float,
        device: str) -> dict:  # fmt: skip
    """Pretrain a forward LM for `epochs`; the train_lm summary plus the setting."""
    store = TokenStore.open(encode_dir / "lm")
    train_tokens, valid_tokens = store.split(0.05)
    torch.manual_seed(0)
    model = build_language_model(ModelConfig(int(store.meta["vocab_size"]), emb, hidden, 3, lstm_bf16=lstm_bf16))
    train = LMStream(train_tokens, bs, bptt, seed=0)
    valid = LMStream(valid_tokens, bs, bptt, seed=0, vary_bptt=False, shuffle_offset=False)
    with tempfile.TemporaryDirectory() as out:
        summary = train_lm(model, train, valid, LMTrainConfig(epochs=epochs, lr=lr, checkpoint_minutes=1e9), Path(out),
                           device=device, seed=0, progress=False)  # fmt: skip
    return dict(lstm="bf16" if lstm_bf16 else "fp32", **{k: summary[k] for k in ("valid_ppl", "train_loss", "tokens_per_second", "seconds")})


def main(argv: list[str] | None = None) -> list[dict]:
    """Command line: one line of JSON per setting, then a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("encode_dir", type=Path)
    for name, default in [("emb", 400), ("hidden", 1152), ("bs", 64), ("bptt", 70), ("epochs", 2)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args(argv)
    rows = []
    for lstm_bf16 in (False, True):
        rows.append(run(a.encode_dir, lstm_bf16, emb=a.emb, hidden=a.hidden, bs=a.bs, bptt=a.bptt, epochs=a.epochs, lr=a.lr,
                        device=a.device))  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print("\n| LSTM precision | valid perplexity | train loss | tokens/s | seconds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lstm']} | {r['valid_ppl']:.2f} | {r['train_loss']:.4f} | {r['tokens_per_second']:,.0f} | {r['seconds']:.1f} |")
    return rows


if __name__ == "__main__":
    main()
