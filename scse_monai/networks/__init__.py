from . import blocks, layers, nets
from .utils import count_parameters, count_se_parameters, iter_se_layers

__all__ = ["blocks", "layers", "nets", "count_parameters", "count_se_parameters", "iter_se_layers"]
