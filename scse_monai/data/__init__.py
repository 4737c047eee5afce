from .datalist import select_cases
from .inputs import list_inference_inputs
from .weights import inverse_frequency_weights
from .writers import AtomicNibabelWriter

__all__ = ["AtomicNibabelWriter", "list_inference_inputs", "inverse_frequency_weights", "select_cases"]
