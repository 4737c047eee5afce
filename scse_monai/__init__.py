"""scse_monai: spatial and channel squeeze & excitation (scSE) for MONAI.

The SE layers (``cse``, ``sse``, ``scse``) are registered in :data:`scse_monai.networks.layers.SE` when
:mod:`scse_monai.networks` is first imported (any of the names below does that). The top-level names are loaded
lazily so that the data tools (``scse-monai convert``, ``phantom``) start without importing torch and MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import InvalidInputError

__version__ = "0.1.0"

__all__ = [
    "SE",
    "SEUNet",
    "SEDynUNet",
    "SESegResNet",
    "InvalidInputError",
    "add_se",
    "count_se_parameters",
    "get_se_layer",
    "__version__",
]

_LAZY = {
    "SE": "scse_monai.networks.layers",
    "get_se_layer": "scse_monai.networks.layers",
    "SEUNet": "scse_monai.networks.nets",
    "SEDynUNet": "scse_monai.networks.nets",
    "SESegResNet": "scse_monai.networks.nets",
    "add_se": "scse_monai.networks",
    "count_se_parameters": "scse_monai.networks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scse_monai' has no attribute {name!r}")
