"""Data helpers: datalists, inference inputs, class weights and crash-safe writers.

Names are loaded lazily, so that the data commands (``scse-monai evaluate``, ``export-submission``) read a datalist
without importing MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AtomicNibabelWriter",
    "list_inference_inputs",
    "inverse_frequency_weights",
    "select_cases",
    "load_datalist",
    "datalist_entries",
]

_LAZY = {
    "AtomicNibabelWriter": ".writers",
    "list_inference_inputs": ".inputs",
    "inverse_frequency_weights": ".weights",
    "select_cases": ".datalist",
    "load_datalist": ".datalist",
    "datalist_entries": ".datalist",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
