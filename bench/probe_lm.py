"""Linear probe: how much does a run's language model encode about a task's labels?

Usage:
    python bench/probe_lm.py RUN_DIR TASK [--direction fwd] [--max-train 6000] [--threads 1]

RUN_DIR is a finished run folder (`work/runs/<recipe>-<preset>`, with 04-encode, 06-pretrain and
07-finetune_lm). For three encoders of the same size, the forward (or backward) AWD-LSTM is run in eval
mode over the task's documents, its outputs are concat-pooled exactly as the classifier head pools them
(last, max, mean over real tokens), and a logistic regression is fitted on the train split's features:
  - random:      a freshly initialized encoder (seed 0), the floor;
  - pretrained:  06-pretrain/<direction>/model.pt;
  - fine-tuned:  07-finetune_lm/<task>/<direction>/model.pt.
It prints valid weighted F1, macro F1 and accuracy of each probe next to the majority class. When the
fine-tuned LM's probe is barely above the random encoder's, the classifier has little to start from: the
gap is the language model's, not the classifier schedule's.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from ulmfit_multi.model import (  # noqa: E402
    ModelConfig,
    build_classifier,
    build_language_model,
    load_encoder_into_classifier,
    masked_concat_pool,
)
from ulmfit_multi.tokens import ClassifierBatches, TokenStore  # noqa: E402


def split_docs(task_dir: Path, role: str, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Token ids and labels of one encoded split; a seeded random `limit` of them (files may be sorted by label)."""
    store = TokenStore.open(task_dir / role)
    idx = np.arange(len(store))
    if limit and limit < len(store):
        idx = np.sort(np.random.default_rng(0).choice(len(store), limit, replace=False))
    return [store.doc(int(i)) for i in idx], np.load(task_dir / role / "labels.npy")[idx]


@torch.no_grad()
def pooled_features(lm_state: dict | None, cfg: ModelConfig, docs: list[np.ndarray], backwards: bool) -> np.ndarray:
    """(n_docs, 3 * emb) concat-pooled encoder outputs, in document order."""
    torch.manual_seed(0)
    lm = build_language_model(cfg)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    clf = build_classifier(cfg, 2)
    load_encoder_into_classifier(clf, lm)
    clf.eval()
    out = np.zeros((len(docs), 3 * cfg.emb_size), dtype=np.float32)
    batches = ClassifierBatches(docs, None, 128, shuffle=False, max_len=1400, backwards=backwards)
    for x, lengths, _, idx in batches.batches(0):
        outputs, mask = clf.encoder(x, lengths)
        out[idx.numpy()] = masked_concat_pool(outputs, mask).numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("task")
    ap.add_argument("--direction", default="fwd", choices=["fwd", "bwd"])
    ap.add_argument("--max-train", type=int, default=6000, help="train documents used to fit the probe")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run, task = a.run_dir, a.task
    task_dir = run / "04-encode" / "tasks" / task
    if not task_dir.is_dir():
        sys.exit(f"error: {task_dir} not found (is {run} a finished run with task {task!r}?)")
    model = tomllib.loads((run / "config.resolved.toml").read_text())["model"]
    train_docs, y_train = split_docs(task_dir, "train", a.max_train)
    valid_docs, y_valid = split_docs(task_dir, "valid")
    vocab = TokenStore.open(task_dir / "train").meta["vocab_size"]
    cfg = ModelConfig(vocab_size=vocab, emb_size=model["emb_size"], hidden_size=model["hidden_size"],
                      n_layers=model["n_layers"])
    encoders = {
        "random": None,
        "pretrained": run / "06-pretrain" / a.direction / "model.pt",
        "fine-tuned": run / "07-finetune_lm" / task / a.direction / "model.pt",
    }
    majority = np.bincount(y_train).argmax()
    print(f"{run.name} {task} {a.direction}: emb {cfg.emb_size}, hidden {cfg.hidden_size}, vocab {vocab}; "
          f"probe fitted on {len(train_docs)} train docs, scored on {len(valid_docs)} valid docs")
    print("| encoder | valid w-F1 | valid macro F1 | valid accuracy |\n|---|---|---|---|")
    pred = np.full_like(y_valid, majority)
    print(f"| majority class | {f1_score(y_valid, pred, average='weighted'):.3f} | "
          f"{f1_score(y_valid, pred, average='macro'):.3f} | {accuracy_score(y_valid, pred):.3f} |")
    for name, path in encoders.items():
        state = None if path is None else torch.load(path, map_location="cpu", weights_only=True)
        back = a.direction == "bwd"
        x_train = pooled_features(state, cfg, train_docs, back)
        x_valid = pooled_features(state, cfg, valid_docs, back)
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        probe = LogisticRegression(C=1.0, max_iter=3000).fit((x_train - mean) / std, y_train)
        pred = probe.predict((x_valid - mean) / std)
        print(f"| {name} | {f1_score(y_valid, pred, average='weighted'):.3f} | "
              f"{f1_score(y_valid, pred, average='macro'):.3f} | {accuracy_score(y_valid, pred):.3f} |", flush=True)


if __name__ == "__main__":
    main()
