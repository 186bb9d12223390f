"""Prediction speed on a CPU, fp32 against bf16 autocast and int8 dynamic quantization, and what each costs in
accuracy.

    ulmfit-multi bench predict work/runs/mr-cpu --task mahasent-mr --texts MahaSent_MR_Test.csv \\
        --column marathi_sentence --label label
    ulmfit-multi bench predict mahasent-mr.zip --texts test.csv --column marathi_sentence --label label

Both passes classify the same texts with the same batches (after one warm-up batch); the labels, when the file
has them (raw values as in the recipe's `labels` mapping, or class names), give each pass's accuracy and the
change. Figures from a machine busy with other work are not measurements: run it on an idle machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .predict_io import read_texts

MODES = ("fp32", "bf16", "int8")  # the passes bench_predict times, fp32 first (the others are compared with it)


def load_predictor(path: str | Path, *, task: str | None = None, seed: int = 0, quantize: str | None = None,
                   precision: str = "cuda-bf16") -> Any:
    """A Predictor from a run folder (config.resolved.toml inside) or a classifier bundle; `precision` a
    `model.precision` value for its forward pass (`precision.resolve_precision`)."""
    from .precision import resolve_precision
    from .predict import Predictor

    if is_run_folder(path):
        predictor = Predictor.from_run(path, task=task, seed=seed)
        predictor = predictor.quantize(quantize) if quantize else predictor
    else:
        predictor = Predictor.load(path, quantize=quantize)
    predictor.precision = resolve_precision(precision, predictor.device)
    if quantize and predictor.precision != "fp32":
        raise ValueError(f"int8 dynamic quantization runs its products in int8 and the rest in fp32; "
                         f"precision {precision!r} asks for bf16 on {predictor.device}")
    return predictor


def is_run_folder(path: str | Path) -> bool:
    """A run folder (config.resolved.toml, no bundle.json), not a bundle."""
    from .bundle import MANIFEST

    return (Path(path) / "config.resolved.toml").exists() and not (Path(path) / MANIFEST).exists()


def label_map(path: str | Path, task: str | None) -> dict[str, str]:
    """Raw label value -> class name of the task (the recipe's `labels`), from a run folder or a bundle."""
    from .bundle import read_manifest
    from .runfolder import RunFolder

    if is_run_folder(path):
        cfg = RunFolder(path).config()
        spec = next((t for t in cfg.tasks if t.name == task), cfg.tasks[0] if cfg.tasks else None)
        return dict(spec.labels) if spec else {}
    return dict(read_manifest(path)["task"].get("labels", {}))


def gold_indices(gold: list[str], classes: list[str], mapping: dict[str, str]) -> np.ndarray:
    """Class index of each gold label (a raw value of `mapping` or a class name)."""
    from .corpus.tasks import normalize_label

    by_key = {normalize_label(k): v for k, v in mapping.items()} | {normalize_label(c): c for c in classes}
    out = []
    for g in gold:
        name = by_key.get(normalize_label(g))
        if name is None:
            raise DataError(f"label {g!r} is neither a class ({', '.join(classes)}) nor a raw value of the task's "
                            f"labels ({', '.join(mapping)})")
        out.append(classes.index(name))
    return np.asarray(out)


def _timed(predictor: Any, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    predictor.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up: allocations, thread pools
    started = time.perf_counter()
    proba = predictor.predict_proba(texts, batch_size=batch_size)
    return proba, time.perf_counter() - started


def bench_predict(path: str | Path, texts_file: str | Path, *, column: str | None = None, field: str | None = None,
                  label_key: str | None = None, task: str | None = None, seed: int = 0, batch_size: int = 64,
                  threads: int = 2, max_texts: int = 0) -> dict[str, Any]:
    """documents/s of fp32, bf16 (CPU autocast; on a CPU without native bf16 it is emulated and slow) and int8
    prediction on the texts of `texts_file`, and their accuracy when labelled."""
    import torch

    torch.set_num_threads(threads)
    items = list(read_texts(texts_file, column=column, field=field, label_key=label_key))
    items = items[:max_texts] if max_texts else items
    if not items:
        raise DataError(f"{texts_file}: no texts")
    texts = [it.text for it in items]
    result: dict[str, Any] = {"documents": len(texts), "threads": threads, "batch_size": batch_size,
                              "model": str(path)}
    probas = {}
    for mode in MODES:
        predictor = load_predictor(path, task=task, seed=seed, quantize="int8" if mode == "int8" else None,
                                   precision="bf16" if mode == "bf16" else "fp32")
        proba, seconds = _timed(predictor, texts, batch_size)
        probas[mode] = proba
        result[mode] = {"seconds": round(seconds, 3), "documents_per_second": len(texts) / seconds}
    for mode in MODES[1:]:
        result[mode]["speedup"] = result["fp32"]["seconds"] / result[mode]["seconds"]
        result[mode]["agreement"] = float((probas["fp32"].argmax(1) == probas[mode].argmax(1)).mean())
    if label_key is not None:
        y = gold_indices([it.label or "" for it in items], predictor.classes, label_map(path, task))
        for mode in MODES:
            result[mode]["accuracy"] = float((probas[mode].argmax(1) == y).mean())
        for mode in MODES[1:]:
            result[mode]["accuracy_change"] = result[mode]["accuracy"] - result["fp32"]["accuracy"]
    return result


def format_bench_predict(r: dict[str, Any]) -> str:
    """The benchmark's result as a few lines."""
    lines = [f"{r['model']}: {r['documents']} documents, batch {r['batch_size']}, {r['threads']} threads"]
    for mode in MODES:
        m = r[mode]
        acc = f", accuracy {100 * m['accuracy']:.2f}" if "accuracy" in m else ""
        against = (f"; {m['speedup']:.2f}x fp32, same label for {100 * m['agreement']:.2f}% of the texts"
                   + (f", accuracy {100 * m['accuracy_change']:+.2f} points" if "accuracy_change" in m else "")
                   if mode != "fp32" else "")
        lines.append(f"  {mode}: {m['documents_per_second']:.1f} documents/s ({m['seconds']:.2f} s){acc}{against}")
    return "\n".join(lines)
