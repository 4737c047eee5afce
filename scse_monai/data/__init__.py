from .datalist import SPLITS, datalist_folds, next_fold, select_cases, select_split
from .inputs import list_inference_inputs
from .weights import inverse_frequency_weights
from .writers import AtomicNibabelWriter

__all__ = [
    "AtomicNibabelWriter",
    "SPLITS",
    "datalist_folds",
    "next_fold",
    "list_inference_inputs",
    "inverse_frequency_weights",
    "select_cases",
    "select_split",
]
