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

    import dataclasses

    import numpy as np
    import torch

    from ulmfit_multi.config import load_run_config
    from ulmfit_multi.pipeline import (_classifier_batches, _metric_fn, build_task_classifier, classifier_train_config,
                                       classifier_train_valid, read_json)
    from ulmfit_multi.train import predict_proba, train_classifier

    cfg = load_run_config(args.run)
    c = cfg.classifier
    sets = parse_sets(args.sets)
    drop_mult = sets.pop("drop_mult", c.drop_mult)
    if "stage_lrs" in sets:
        sets["stage_lrs"] = tuple(sets["stage_lrs"])
    tdir = args.run / "04-encode" / "tasks" / args.task
    meta = read_json(tdir / "task.json")
    n_classes = len(meta["classes"])
    score = _metric_fn(meta["metric"], n_classes)
    backwards = args.direction == "bwd"

    torch.manual_seed(args.seed)
    lm_path = None if args.random_encoder else args.run / "07-finetune_lm" / args.task / args.direction / "model.pt"
    model = build_task_classifier(cfg, tdir, n_classes, lm_path, drop_mult=drop_mult)
    train, valid = classifier_train_valid(cfg, tdir, args.run / "04-encode", seed=args.seed, backwards=backwards)
    tcfg = dataclasses.replace(classifier_train_config(c), checkpoint_minutes=1e9, **sets)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_classifier(model, train, valid, tcfg, Path(tmp), n_classes=n_classes, seed=args.seed,
                                  progress=False, score=score)
        history = [json.loads(line) for line in (Path(tmp) / "history.jsonl").read_text().splitlines()]
    test_batches = _classifier_batches(tdir, "test", c.batch_size * 2, shuffle=False, seed=args.seed,
                                       backwards=backwards, max_len=c.max_len)
    test = score(np.load(tdir / "test" / "labels.npy"), predict_proba(model, test_batches).argmax(1))
    print(json.dumps({
        "run": str(args.run), "task": args.task, "direction": args.direction, "seed": args.seed,
        "set": dict(sets, drop_mult=drop_mult), "random_encoder": args.random_encoder,
        "kept_epoch": result["best_epoch"], "valid": round(result["valid_score"], 4), "test": round(test, 4),
        "epochs": [[round(h["train_accuracy"], 3), round(h["valid_score"], 4)] for h in history if h["kind"] == "epoch"],
        "seconds": round(time.perf_counter() - started),
    }))


if __name__ == "__main__":
    main()
