from . import blocks, layers, nets
from .excitation import ExcitationRecorder, capture_excitations
from .utils import count_parameters, count_se_parameters, iter_se_layers

__all__ = [
    "blocks",
    "layers",
    "nets",
    "ExcitationRecorder",
    "capture_excitations",
    "count_parameters",
    "count_se_parameters",
    "iter_se_layers",
]
