from monai.networks.blocks import ChannelSELayer

from .fused_scse import SCSEMaxFunction, scse_max, scse_max_reference
from .squeeze_and_excitation import ChannelSpatialSELayer, SpatialSELayer

__all__ = [
    "ChannelSELayer",
    "ChannelSpatialSELayer",
    "SCSEMaxFunction",
    "SpatialSELayer",
    "scse_max",
    "scse_max_reference",
]
