from monai.networks.blocks import ChannelSELayer

from .maxout import maxout_recalibrate, maxout_reference
from .squeeze_and_excitation import ChannelSpatialSELayer, SpatialSELayer

__all__ = [
    "ChannelSELayer",
    "ChannelSpatialSELayer",
    "SpatialSELayer",
    "maxout_recalibrate",
    "maxout_reference",
]
