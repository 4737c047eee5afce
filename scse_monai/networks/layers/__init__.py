from .factories import SE
from .utils import SESpecError, get_se_layer, normalize_se_spec, se_layer_types

__all__ = ["SE", "SESpecError", "get_se_layer", "normalize_se_spec", "se_layer_types"]
