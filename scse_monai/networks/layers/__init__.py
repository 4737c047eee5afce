from .factories import SE
from .utils import get_se_layer, se_layer_types

__all__ = ["SE", "get_se_layer", "se_layer_types"]
