"""Screen a classifier setting: train one classifier (task, direction, seed) from a finished run's fine-tuned LM.

Usage:
    python bench/classifier_trial.py work/runs/ta-cpu fire2020-ta --set epochs=8 --set drop_mult=0.1
    python bench/classifier_trial.py work/runs/ta-cpu fire2020-ta --direction bwd --seed 1 --set 'stage_lrs=[0.02, 0.01]'
    python bench/classifier_trial.py work/runs/ta-cpu fire2020-ta --random-encoder   # no LM: what pretraining adds

`--set` takes `ClassifierTrainConfig` fields (epochs, lr, stage_lrs, wd, clip, gradual_unfreezing, ...) and
`drop_mult`, as TOML values; the rest of the setting is the run's own `classifier` config. Prints one JSON line:
the kept epoch, its valid score, the test score (the task's metric) and per epoch (train accuracy, valid score).
Nothing is written to the run; a setting worth keeping goes into the recipe (`classifier.*`) and reruns the
`classifier` stage for every task, direction and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout


def parse_sets(items: list[str]) -> dict:
    """`key=value` pairs with TOML values."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder (work/runs/<recipe>-<preset>) with its classifier inputs")
    ap.add_argument("task")
    ap.add_argument("--direction", default="fwd", choices=("fwd", "bwd"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--random-encoder", action="store_true", help="start from a random encoder, not the LM")
    args = ap.parse_args()

    import numpy as np
    import torch

    from ulmfit_multi.config import load_run_config
    from ulmfit_multi.model import build_classifier, build_language_model, load_encoder_into_classifier
    from ulmfit_multi.pipeline import _classifier_batches, _lm_config, _metric_fn, read_json
    from ulmfit_multi.train import ClassifierTrainConfig, predict_proba, train_classifier

    cfg = load_run_config(args.run)
    c = cfg.classifier
    sets = parse_sets(args.sets)
    drop_mult = sets.pop("drop_mult", c.drop_mult)
    tdir = args.run / "04-encode" / "tasks" / args.task
    meta = read_json(tdir / "task.json")
    n_classes = len(meta["classes"])
    score = _metric_fn(meta["metric"], n_classes)
    vocab = int(read_json(tdir / "train" / "meta.json")["vocab_size"])

    torch.manual_seed(args.seed)
    lm = build_language_model(_lm_config(cfg, vocab, cfg.model.drop_mult))
    if not args.random_encoder:
        lm.load_state_dict(torch.load(args.run / "07-finetune_lm" / args.task / args.direction / "model.pt",
                                      map_location="cpu"))
    model = build_classifier(_lm_config(cfg, vocab, drop_mult), n_classes, bptt=cfg.model.bptt, max_len=c.max_len)
    load_encoder_into_classifier(model, lm)

    def batches(role: str, bs: int, shuffle: bool):
        return _classifier_batches(tdir, role, bs, shuffle=shuffle, seed=args.seed,
                                   backwards=args.direction == "bwd", max_len=c.max_len)

    fields = dict(epochs=c.epochs, lr=c.lr, stage_lrs=tuple(c.stage_lrs), wd=c.wd, clip=c.clip,
                  gradual_unfreezing=c.gradual_unfreezing, class_weights=c.class_weights, checkpoint_minutes=1e9)
    fields.update(sets)
    fields["stage_lrs"] = tuple(fields["stage_lrs"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_classifier(model, batches("train", c.batch_size, True), batches("valid", c.batch_size, False),
                                  ClassifierTrainConfig(**fields), Path(tmp), n_classes=n_classes, seed=args.seed,
                                  progress=False, score=score)
        history = [json.loads(line) for line in (Path(tmp) / "history.jsonl").read_text().splitlines()]
    proba = predict_proba(model, batches("test", c.batch_size * 2, False))
    test = score(np.load(tdir / "test" / "labels.npy"), proba.argmax(1))
    print(json.dumps({
        "run": str(args.run), "task": args.task, "direction": args.direction, "seed": args.seed,
        "set": dict(sets, drop_mult=drop_mult), "random_encoder": args.random_encoder,
        "kept_epoch": result["best_epoch"], "valid": round(result["valid_score"], 4), "test": round(test, 4),
        "epochs": [[round(h["train_accuracy"], 3), round(h["valid_score"], 4)] for h in history if h["kind"] == "epoch"],
        "seconds": round(time.perf_counter() - started),
    }))


if __name__ == "__main__":
    main()
