"""ulmfit_multi: ULMFiT for low-resource and code-mixed Indic text classification.

Python API (each CLI command has one):
    from ulmfit_multi import load_recipe, run_recipe
    result = run_recipe("mr", preset="smoke", mirror="../shared/data")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_recipe", "run_recipe", "Predictor"]


def __getattr__(name: str) -> Any:
    # heavy modules (torch) load only when used
    if name == "load_recipe":
        from .config import load_recipe

        return load_recipe
    if name == "run_recipe":
        from .pipeline import run_recipe

        return run_recipe
    if name == "Predictor":
        from .predict import Predictor

        return Predictor
    raise AttributeError(name)
