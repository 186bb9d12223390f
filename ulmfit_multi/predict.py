"""Classify new texts with a finished run's classifiers (forward + backward ensemble).

    from ulmfit_multi.predict import Predictor
    p = Predictor.from_run("work/runs/mr-smoke", task="mahasent-gt")
    p.predict(["हा चित्रपट खूप छान आहे"])   # [("positive", 0.83)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json
from .errors import StageError


@dataclass
class Predictor:
    """A tokenizer plus one classifier per direction, the class names, and how the run's encode stage made
    texts into ids (language, normalization, document boundary), so new texts get exactly the same."""

    tokenizer: Any
    models: dict[str, Any]
    classes: list[str]
    max_len: int
    device: str = "cpu"
    lang: str = ""
    normalization: str = "shared"
    doc_boundary: str = "eos"

    @classmethod
    def from_run(cls, run_dir: str | Path, *, task: str | None = None, seed: int = 0,
                 device: str = "cpu") -> "Predictor":
        """Load the tokenizer and the classifiers of `task` (default: the first task) from a run folder."""
        import torch

        from .builders import build_run_classifier
        from .runfolder import RunFolder
        from .tokenizer import Tokenizer

        run = RunFolder(run_dir)
        cfg = run.config()
        task = task or (cfg.tasks[0].name if cfg.tasks else None)
        if task is None:
            raise StageError(f"{run.path}: this recipe has no classification task")
        tdir = run.stage_dir("encode") / "tasks" / task
        if not tdir.exists():
            raise StageError(f"{run.path}: no task '{task}'; tasks are {[t.name for t in cfg.tasks]}")
        meta = read_json(tdir / "task.json")
        tok = Tokenizer.load(run.stage_dir("tokenizer"))
        models = {}
        for direction in cfg.pretrain.directions:
            weights = run.stage_dir("classifier") / task / direction / f"seed{seed}" / "model.pt"
            if not weights.exists():
                raise StageError(f"{weights}: no trained classifier (run the classifier stage)")
            model = build_run_classifier(cfg, tok.vocab_size, len(meta["classes"]))
            model.load_state_dict(torch.load(weights, map_location="cpu"))
            models[direction] = model.to(device).eval()
        task_lang = next(t.lang for t in cfg.tasks if t.name == task)
        return cls(tok, models, meta["classes"], cfg.classifier.max_len, device, lang=meta.get("lang", task_lang),
                   normalization=meta.get("normalization", "legacy"), doc_boundary=meta.get("doc_boundary", "none"))

    def documents(self, texts: list[str]) -> list[list[int]]:
        """Token ids of texts, prepared and encoded as the run's encode stage did its task splits."""
        from .corpus.tasks import prepare_text

        prepared = [prepare_text(t, self.lang, self.normalization) for t in texts]
        return self.tokenizer.encode_documents(prepared, boundary=self.doc_boundary)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Ensembled class probabilities, shape (len(texts), n_classes)."""
        from .tokens import ClassifierBatches
        from .train_classifier import predict_proba

        docs = self.documents(texts)
        probas = []
        for direction, model in self.models.items():
            batches = ClassifierBatches(docs, None, 64, shuffle=False, max_len=self.max_len,
                                        backwards=direction == "bwd")
            probas.append(predict_proba(model, batches, device=self.device))
        return np.mean(probas, axis=0)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(class name, probability) for each text."""
        proba = self.predict_proba(texts)
        return [(self.classes[i], float(p[i])) for i, p in zip(proba.argmax(1), proba)]
