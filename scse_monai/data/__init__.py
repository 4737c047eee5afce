from .inputs import list_inference_inputs
from .weights import inverse_frequency_weights

__all__ = ["list_inference_inputs", "inverse_frequency_weights"]
