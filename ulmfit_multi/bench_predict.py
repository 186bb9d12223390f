"""Prediction speed on a CPU, fp32 against int8 dynamic quantization, and what int8 costs in accuracy.

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


def load_predictor(path: str | Path, *, task: str | None = None, seed: int = 0, quantize: str | None = None) -> Any:
    """A Predictor from a run folder (config.resolved.toml inside) or a classifier bundle."""
    from .predict import Predictor

    if is_run_folder(path):
        predictor = Predictor.from_run(path, task=task, seed=seed)
        return predictor.quantize(quantize) if quantize else predictor
    return Predictor.load(path, quantize=quantize)


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
    """documents/s of fp32 and int8 prediction on the texts of `texts_file`, and their accuracy when labelled."""
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
    for mode in ("fp32", "int8"):
        predictor = load_predictor(path, task=task, seed=seed, quantize=None if mode == "fp32" else mode)
        proba, seconds = _timed(predictor, texts, batch_size)
        probas[mode] = proba
        result[mode] = {"seconds": round(seconds, 3), "documents_per_second": len(texts) / seconds}
    result["speedup"] = result["fp32"]["seconds"] / result["int8"]["seconds"]
    result["agreement"] = float((probas["fp32"].argmax(1) == probas["int8"].argmax(1)).mean())
    if label_key is not None:
        y = gold_indices([it.label or "" for it in items], predictor.classes, label_map(path, task))
        for mode in ("fp32", "int8"):
            result[mode]["accuracy"] = float((probas[mode].argmax(1) == y).mean())
        result["accuracy_change"] = result["int8"]["accuracy"] - result["fp32"]["accuracy"]
    return result


def format_bench_predict(r: dict[str, Any]) -> str:
    """The benchmark's result as a few lines."""
    lines = [f"{r['model']}: {r['documents']} documents, batch {r['batch_size']}, {r['threads']} threads"]
    for mode in ("fp32", "int8"):
        m = r[mode]
        acc = f", accuracy {100 * m['accuracy']:.2f}" if "accuracy" in m else ""
        lines.append(f"  {mode}: {m['documents_per_second']:.1f} documents/s ({m['seconds']:.2f} s){acc}")
    lines.append(f"  int8 speed-up {r['speedup']:.2f}x; same label for {100 * r['agreement']:.2f}% of the texts")
    if "accuracy_change" in r:
        lines.append(f"  accuracy change with int8: {100 * r['accuracy_change']:+.2f} points")
    return "\n".join(lines)
