"""scse_monai: spatial and channel squeeze & excitation (scSE) for MONAI.

Importing the package registers the SE layers (``cse``, ``sse``, ``scse``) in
:data:`scse_monai.networks.layers.SE`.
"""

from __future__ import annotations

from .errors import InvalidInputError
from .networks import count_se_parameters
from .networks.layers import SE, get_se_layer
from .networks.nets import SEUNet

__version__ = "0.1.0"

__all__ = ["SE", "SEUNet", "InvalidInputError", "count_se_parameters", "get_se_layer", "__version__"]
