from . import blocks, layers, nets
from .excitation import ExcitationRecorder, SEGates, capture_excitations, excitation_gates
from .nets.seunet import PLACEMENT_VARIANTS
from .placement import add_se, select_modules
from .utils import count_parameters, count_se_parameters, iter_se_layers

__all__ = [
    "blocks",
    "layers",
    "nets",
    "ExcitationRecorder",
    "PLACEMENT_VARIANTS",
    "SEGates",
    "add_se",
    "capture_excitations",
    "count_parameters",
    "count_se_parameters",
    "excitation_gates",
    "iter_se_layers",
    "select_modules",
]
