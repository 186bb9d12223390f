"""ulmfit_multi: ULMFiT for low-resource and code-mixed Indic text classification."""

__version__ = "0.1.0"
