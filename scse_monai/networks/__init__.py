from . import blocks, layers, nets
from .excitation import ExcitationRecorder, SEGates, capture_excitations, excitation_gates
from .utils import count_parameters, count_se_parameters, iter_se_layers

__all__ = [
    "blocks",
    "layers",
    "nets",
    "ExcitationRecorder",
    "SEGates",
    "capture_excitations",
    "excitation_gates",
    "count_parameters",
    "count_se_parameters",
    "iter_se_layers",
]
