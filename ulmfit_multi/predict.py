"""Classify new texts with a finished run's classifiers (forward + backward ensemble), or with a bundle.

    from ulmfit_multi.predict import Predictor
    p = Predictor.from_run("work/runs/mr-smoke", task="mahasent-gt")
    p.predict(["हा चित्रपट खूप छान आहे"])   # [("positive", 0.83)]
    p = Predictor.load("mahasent-gt.zip", quantize="int8")   # a bundle (`ulmfit-multi export`), int8 on CPU

Files of texts in and predictions out (streamed, length-sorted batches): predict_io.py.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json
from . import remote_files
from .errors import StageError
from .remote_files import is_object_uri


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
    normalizer: str | None = None  # indic-nlp normalizer language (a bundle's own); None: the language spec's
    scripts: tuple[str, ...] = ()  # the language's scripts (ISO 15924), for the "unknown script" flag
    source: str = ""  # the run folder or bundle it was loaded from
    quantized: str = ""  # "int8" after `quantize`
    precision: str = "cuda-bf16"  # forward pass: a `model.precision` value ("auto": bf16 on a CPU that has it)

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
                trained = trained_seeds(weights.parent.parent)
                if trained:
                    raise StageError(f"{run.path}: no classifier for seed {seed} of task '{task}'; the run trained "
                                     f"seed{'s' if len(trained) > 1 else ''} {', '.join(map(str, trained))} "
                                     f"(--seed {trained[0]})")
                raise StageError(f"{weights}: no trained classifier (run the classifier stage)")
            model = build_run_classifier(cfg, tok.vocab_size, len(meta["classes"]))
            model.load_state_dict(torch.load(weights, map_location="cpu"))
            models[direction] = model.to(device).eval()
        task_lang = next(t.lang for t in cfg.tasks if t.name == task)
        return cls(tok, models, meta["classes"], cfg.classifier.max_len, device, lang=meta.get("lang", task_lang),
                   normalization=meta.get("normalization", "legacy"), doc_boundary=meta.get("doc_boundary", "none"),
                   scripts=tuple(_lang_scripts(meta.get("lang", task_lang))), source=str(run.path))

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", quantize: str | None = None) -> "Predictor":
        """Load a classifier bundle (`ulmfit-multi export RUN --task T`, a folder or .zip), verified, on a machine
        that never saw the run: its tokenizer, weights, labels and text preparation all come from the bundle.
        `path` may be an object-storage URI (remote_files.py)."""
        from .bundle import Bundle, BundleError
        from .model import build_classifier
        from .tokenizer import Tokenizer

        if is_object_uri(path):  # s3://.../gt.zip: a local copy, downloaded once
            path = remote_files.cached(str(path))
        with Bundle.open(path) as bundle:
            if bundle.kind != "classifier":
                raise BundleError(f"{path}: a {bundle.kind!r} bundle; prediction needs a classifier bundle "
                                  "(ulmfit-multi export RUN --task TASK)")
            m = bundle.manifest
            with bundle.folder("tokenizer") as tok_dir:
                tok = Tokenizer.load(tok_dir)  # SentencePiece reads the model into memory: the folder may go
            sizes = bundle_model_section(m["model"], m["classifier"]["drop_mult"])
            models = {}
            for direction in m["directions"]:
                model = build_classifier(sizes, m["vocab_size"], len(m["task"]["classes"]),
                                         max_len=m["classifier"]["max_len"])
                model.load_state_dict(bundle.torch_load(f"{direction}/model.pt"))
                models[direction] = model.to(device).eval()
        t = m["text"]
        predictor = cls(tok, models, list(m["task"]["classes"]), m["classifier"]["max_len"], device, lang=t["lang"],
                        normalization=t["normalization"], doc_boundary=t["doc_boundary"],
                        normalizer=t.get("normalizer", ""), scripts=tuple(t.get("scripts", ())), source=str(path))
        return predictor.quantize(quantize) if quantize else predictor

    def quantize(self, mode: str = "int8") -> "Predictor":
        """int8 dynamic quantization of the LSTM and Linear layers (CPU inference; the weight-dropped LSTMs are
        plain nn.LSTMs in eval mode, which torch's dynamic quantization replaces). Returns self."""
        if mode != "int8":
            raise ValueError(f"quantize: {mode!r} is not supported; expected 'int8'")
        if self.device != "cpu":
            raise StageError(f"int8 dynamic quantization runs on the CPU, not {self.device!r}")
        self.models = {d: quantize_int8(m) for d, m in self.models.items()}
        self.quantized = mode
        return self

    @staticmethod
    def flag_texts(texts: list[str]) -> list[str]:
        """Why each text's prediction means little ("" when nothing is wrong): an empty text, or one without a
        letter or a digit (only emoji, symbols or punctuation); the classifier still answers for it."""
        reasons = []
        for text in texts:
            if not text.strip():
                reasons.append("empty text")
            elif not any(unicodedata.category(ch)[0] in "LN" for ch in text):
                reasons.append("no letters or digits (only emoji, symbols or punctuation)")
            else:
                reasons.append("")
        return reasons

    def flags(self, texts: list[str]) -> list[str]:
        """`flag_texts`, plus "unknown script" for a text with letters but none in the language's scripts."""
        from .corpus.script import COMMON, char_script

        reasons = self.flag_texts(texts)
        if not self.scripts:
            return reasons
        for i, text in enumerate(texts):
            if reasons[i]:
                continue
            found = {char_script(ch) for ch in text if ch.isalpha()} - {None, COMMON}
            if found and not found & set(self.scripts):
                reasons[i] = f"unknown script ({', '.join(sorted(found))}; expected {', '.join(self.scripts)})"
        return reasons

    def documents(self, texts: list[str]) -> list[list[int]]:
        """Token ids of texts, prepared and encoded as the run's encode stage did its task splits."""
        from .corpus.tasks import prepare_text

        prepared = [prepare_text(t, self.lang, self.normalization, normalizer=self.normalizer) for t in texts]
        return self.tokenizer.encode_documents(prepared, boundary=self.doc_boundary)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Ensembled class probabilities, shape (len(texts), n_classes); batches of similar length."""
        from .tokens import ClassifierBatches
        from .train_classifier import predict_proba

        docs = self.documents(texts)
        probas = []
        for direction, model in self.models.items():
            batches = ClassifierBatches(docs, None, batch_size, shuffle=False, max_len=self.max_len,
                                        backwards=direction == "bwd")
            probas.append(predict_proba(model, batches, device=self.device, precision=self.precision))
        return np.mean(probas, axis=0)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(class name, probability) for each text."""
        proba = self.predict_proba(texts)
        return [(self.classes[i], float(p[i])) for i, p in zip(proba.argmax(1), proba)]


def quantize_int8(model: Any) -> Any:
    """`model` in eval mode with its LSTM and Linear layers dynamically quantized to int8 (CPU inference)."""
    import warnings

    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice (torchao replaces it)
        quantization = getattr(getattr(torch, "ao", None), "quantization", None)
        if quantization is None or not hasattr(quantization, "quantize_dynamic"):
            raise StageError(f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic")
        return quantization.quantize_dynamic(model.eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def bundle_model_section(data: dict[str, Any], drop_mult: float) -> Any:
    """The `[model]` section a bundle recorded (keys this version does not know are left out), with the
    classifier's drop_mult."""
    import dataclasses

    from .config import ModelSection

    known = {f.name for f in dataclasses.fields(ModelSection)}
    return dataclasses.replace(ModelSection(**{k: v for k, v in data.items() if k in known}), drop_mult=drop_mult)


def _lang_scripts(code: str) -> list[str]:
    from .langs import find_lang, load_lang

    return load_lang(code).scripts if find_lang(code) else []


def trained_seeds(direction_dir: Path) -> list[int]:
    """The seeds with a trained classifier in a classifier stage's <task>/<direction> folder."""
    return sorted(int(p.parent.name[4:]) for p in Path(direction_dir).glob("seed*/model.pt")
                  if p.parent.name[4:].isdigit())
