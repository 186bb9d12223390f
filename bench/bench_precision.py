"""Perplexity parity of training precisions: the same LM, same seed, same steps, at fp32 and at bf16.

Trains a run's language model (its `model` and `pretrain` sections, `--set` overrides on top) on the run's
encoded corpus once per precision, one STLR cycle over `--steps` steps, and prints the valid perplexity of
each (evaluated at the precision it trained at, as the recipe's stages do, and at fp32) and the relative
difference to the first precision's. The issue's parity target: within 2%.

Usage:
    python bench/bench_precision.py work/runs/mr-cpu --steps 600              # fp32 vs bf16 on this machine
    python bench/bench_precision.py work/runs/mr-cpu --steps 600 --valid-tokens 200000 --json parity.json
    python bench/bench_precision.py work/runs/mr-cpu --set pretrain.batch_size=32 --precisions fp32,bf16,auto

Each precision trains in `--out`/<precision> (default: a new temporary folder); a folder that already holds a
checkpoint is resumed from, so a killed comparison continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ulmfit_multi.builders import build_lm  # noqa: E402
from ulmfit_multi.config import Config  # noqa: E402
from ulmfit_multi.precision import cpu_has_native_bf16, resolve_precision  # noqa: E402
from ulmfit_multi.runfolder import RunFolder  # noqa: E402
from ulmfit_multi.schema import deep_merge, from_dict, parse_override  # noqa: E402
from ulmfit_multi.tokens import LMStream, TokenStore  # noqa: E402
from ulmfit_multi.train import evaluate_lm, train_lm  # noqa: E402


def run_config(run: Path, overrides: list[str], steps: int) -> Config:
    """The run's resolved config with `overrides` and one epoch of `steps` batches (no mid-epoch checkpoints)."""
    data = RunFolder(run).config().to_dict()
    for item in [*overrides, "pretrain.epochs=1", f"pretrain.max_batches_per_epoch={steps}",
                 "pretrain.checkpoint_minutes=1e9", "pretrain.keep_best=false"]:
        data = deep_merge(data, parse_override(item))
    return from_dict(Config, data, f"{run}/config.resolved.toml (with --set)", "")


def parity(run: Path, *, steps: int = 600, precisions: tuple[str, ...] = ("fp32", "bf16"), direction: str = "fwd",
           valid_tokens: int = 0, overrides: list[str] | None = None, device: str = "cpu", threads: int = 2,
           out: Path | None = None, progress: bool = True) -> dict:
    """Train the run's LM once per precision (same seed, data and steps); {"config", "results": {precision: ...}}."""
    if threads > 0:
        torch.set_num_threads(threads)
    cfg = run_config(run, overrides or [], steps)
    store = TokenStore.open(RunFolder(run).stage_dir("encode") / "lm")
    train_tokens, valid_tokens_ = store.split(cfg.encode.valid_frac)
    if valid_tokens > 0:
        valid_tokens_ = valid_tokens_[:valid_tokens]
    vocab = int(store.meta["vocab_size"])
    p, bptt, backwards = cfg.pretrain, cfg.model.bptt, direction == "bwd"
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="bench_precision_"))
    results: dict[str, dict] = {}
    for precision in precisions:
        resolved = resolve_precision(precision, device)
        torch.manual_seed(0)
        model = build_lm(cfg, vocab)
        train = LMStream(train_tokens, p.batch_size, bptt, backwards=backwards, seed=0)
        valid = LMStream(valid_tokens_, p.batch_size, bptt, backwards=backwards, seed=0, vary_bptt=False,
                         shuffle_offset=False)
        t0 = time.perf_counter()
        s = train_lm(model, train, valid, p, out / precision, device=device, seed=0, progress=progress,
                     precision=resolved)
        fp32_loss = evaluate_lm(model, valid, device=device, precision="fp32")
        results[precision] = dict(precision=resolved, valid_ppl=s["valid_ppl"], valid_ppl_at_fp32=math.exp(fp32_loss),
                                  train_loss=s["train_loss"], steps=s["steps"], tokens_per_second=s["tokens_per_second"],
                                  wall_seconds=time.perf_counter() - t0)
    first = results[precisions[0]]
    for r in results.values():
        r["relative_difference"] = r["valid_ppl"] / first["valid_ppl"] - 1
        r["relative_difference_at_fp32"] = r["valid_ppl_at_fp32"] / first["valid_ppl_at_fp32"] - 1
    return dict(config=dict(run=str(run), steps=steps, direction=direction, device=device, threads=threads,
                            batch_size=p.batch_size, bptt=bptt, emb=cfg.model.emb_size, hidden=cfg.model.hidden_size,
                            layers=cfg.model.n_layers, vocab=vocab, valid_tokens=int(len(valid_tokens_)),
                            overrides=list(overrides or []), cpu_native_bf16=cpu_has_native_bf16(),
                            torch=torch.__version__, out=str(out)),
                results=results)


def format_results(out: dict) -> str:
    """A small table: one line per precision, the difference relative to the first."""
    lines = [f"{'precision':>10} {'ran at':>6} {'valid ppl':>10} {'vs first':>9} {'ppl at fp32':>12} {'vs first':>9}"
             f" {'tok/s':>9}"]
    for name, r in out["results"].items():
        lines.append(f"{name:>10} {r['precision']:>6} {r['valid_ppl']:>10.3f} {r['relative_difference']:>+9.2%} "
                     f"{r['valid_ppl_at_fp32']:>12.3f} {r['relative_difference_at_fp32']:>+9.2%} "
                     f"{r['tokens_per_second']:>9,.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Command line: python bench/bench_precision.py RUN [--steps N] [--precisions fp32,bf16] [--json out.json]."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder whose encode stage has finished (work/runs/mr-cpu)")
    ap.add_argument("--steps", type=int, default=600, help="training steps (batches) at each precision")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated; the first is the reference")
    ap.add_argument("--direction", default="fwd", choices=("fwd", "bwd"))
    ap.add_argument("--valid-tokens", type=int, default=0, help="score the first N valid tokens (0: all)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a recipe override, e.g. pretrain.batch_size=32 (repeatable)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, help="training folders (default: a new temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    out = parity(a.run, steps=a.steps, precisions=tuple(p.strip() for p in a.precisions.split(",") if p.strip()),
                 direction=a.direction, valid_tokens=a.valid_tokens, overrides=a.overrides, device=a.device,
                 threads=a.threads, out=a.out, progress=not a.no_progress)
    print(format_results(out), flush=True)
    if a.json:
        from ulmfit_multi.atomic import write_json

        write_json(a.json, out)
    return out


if __name__ == "__main__":
    print(json.dumps(main()["config"]))
