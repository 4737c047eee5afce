"""Data helpers: datalists and their patient groups, inference inputs, class weights and crash-safe writers.

Names are loaded lazily, so that the data commands (``scse-monai evaluate``, ``export-submission``) read a datalist
without importing MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AtomicNibabelWriter",
    "DicomSegWriter",
    "SPLITS",
    "datalist_entries",
    "datalist_folds",
    "inverse_frequency_weights",
    "list_inference_inputs",
    "load_datalist",
    "output_name_formatter",
    "next_fold",
    "select_cases",
    "select_split",
]

_LAZY = {
    "AtomicNibabelWriter": ".writers",
    "DicomSegWriter": ".writers",
    "list_inference_inputs": ".inputs",
    "output_name_formatter": ".naming",
    "inverse_frequency_weights": ".weights",
    **{name: ".datalist" for name in ("SPLITS", "datalist_entries", "datalist_folds", "load_datalist", "next_fold",
                                      "select_cases", "select_split")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
