"""Linear probe: how much does a run's language model encode about a task's labels?

For three encoders of the run's size (a freshly initialized one, the pretrained LM, the LM fine-tuned on the
task), the AWD-LSTM runs in eval mode over the task's documents, its outputs are concat-pooled exactly as the
classifier head pools them (last, max, mean over real tokens), and a logistic regression is fitted on
standardized train features and scored on the valid split. When the fine-tuned LM's probe is barely above the
random encoder's, the classifier has little to start from: the gap is the language model's, not the
classifier schedule's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .atomic import read_json
from .config import ModelSection
from .errors import StageError
from .runfolder import RunFolder

ENCODERS = ("random", "pretrained", "fine-tuned")


def _split(task_dir: Path, role: str, limit: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Token ids and labels of one encoded split; a seeded random `limit` of them (files may be sorted by label)."""
    from .tokens import TokenStore

    store = TokenStore.open(task_dir / role)
    idx = np.arange(len(store))
    if limit and limit < len(store):
        idx = np.sort(np.random.default_rng(0).choice(len(store), limit, replace=False))
    return [store.doc(int(i)) for i in idx], np.load(task_dir / role / "labels.npy")[idx]


def probe_encoder(lm_state: dict | None, cfg: ModelSection, vocab_size: int):
    """The classifier's document encoder (eval mode) with an LM's weights; `lm_state` None = random (seed 0)."""
    import torch

    from .model import build_classifier, build_language_model, load_encoder_into_classifier

    torch.manual_seed(0)
    lm = build_language_model(cfg, vocab_size)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    clf = build_classifier(cfg, vocab_size, 2)
    load_encoder_into_classifier(clf, lm)
    return clf.encoder.eval()


def pooled_features(encoder, docs: list[np.ndarray], *, backwards: bool = False) -> np.ndarray:
    """(n_docs, 3 * emb) concat-pooled `encoder` outputs, in document order."""
    import torch

    from .model import masked_concat_pool
    from .tokens import ClassifierBatches

    out = np.zeros((len(docs), 3 * encoder.module.cfg.emb_size), dtype=np.float32)
    with torch.no_grad():
        for x, lengths, _, idx in ClassifierBatches(docs, None, 128, shuffle=False, backwards=backwards).batches(0):
            outputs, mask = encoder(x, lengths)
            out[idx.numpy()] = masked_concat_pool(outputs, mask).numpy()
    return out


def probe_run(run_dir: str | Path, task: str, *, direction: str = "fwd", max_train: int | None = 6000) -> list[dict]:
    """Probe rows {encoder, weighted_f1, macro_f1, accuracy} on the valid split: majority class first, then ENCODERS."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from .evaluate import compute_metrics
    from .tokens import TokenStore

    run = RunFolder(run_dir)
    task_dir = run.stage_dir("encode") / "tasks" / task
    if not task_dir.is_dir():
        raise StageError(f"{run.path}: no encoded task '{task}' (folder {task_dir} is missing)")
    weights = {
        "random": None,
        "pretrained": run.stage_dir("pretrain") / direction / "model.pt",
        "fine-tuned": run.stage_dir("finetune_lm") / task / direction / "model.pt",
    }
    for path in filter(None, weights.values()):
        if not path.exists():
            raise StageError(f"{path}: no {direction} language model in this run")
    # eval mode: the dropouts have no effect on the features (drop_mult 1 only keeps them valid probabilities)
    cfg = dataclasses.replace(run.config().model, drop_mult=1.0)
    vocab_size = int(TokenStore.open(task_dir / "train").meta["vocab_size"])
    train_docs, y_train = _split(task_dir, "train", max_train)
    valid_docs, y_valid = _split(task_dir, "valid", None)

    n_classes = len(read_json(task_dir / "task.json")["classes"])

    def row(name: str, pred: np.ndarray) -> dict:
        return dict(encoder=name, **compute_metrics(y_valid, pred, n_classes), n_train=len(train_docs),
                    n_valid=len(valid_docs))

    rows = [row("majority class", np.full_like(y_valid, np.bincount(y_train).argmax()))]
    backwards = direction == "bwd"
    for name, path in weights.items():
        state = None if path is None else torch.load(path, map_location="cpu", weights_only=True)
        encoder = probe_encoder(state, cfg, vocab_size)
        x_train = pooled_features(encoder, train_docs, backwards=backwards)
        x_valid = pooled_features(encoder, valid_docs, backwards=backwards)
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        probe = LogisticRegression(C=1.0, max_iter=3000).fit((x_train - mean) / std, y_train)
        rows.append(row(name, probe.predict((x_valid - mean) / std)))
    return rows


def format_probe(rows: list[dict]) -> str:
    """Markdown table of `probe_run` rows, in percent."""
    lines = ["| encoder | valid w-F1 | valid macro F1 | valid accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['encoder']} | {100 * r['weighted_f1']:.1f} | {100 * r['macro_f1']:.1f} | {100 * r['accuracy']:.1f} |"
              for r in rows]
    return "\n".join(lines)
