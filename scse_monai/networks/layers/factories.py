"""The SE layer registry, a MONAI :class:`~monai.networks.layers.factories.LayerFactory`.

Names are case-insensitive (``SE["scse"]``, ``SE["SCSE"]``, ``SE[SE.SCSE]``); a typo raises MONAI's error with a
"did you mean" suggestion. Every registered class must take ``(spatial_dims, in_channels, **kwargs)``.

Registering your own block makes it usable by name everywhere a spec is accepted, bundle configs included
(import your module first, e.g. ``"imports": ["$import my_package"]``)::

    from scse_monai.networks.layers import SE

    SE.add_factory_class("mycse", MyChannelSE)
    net = SEUNet(2, 1, 5, channels=(16, 32, 64), strides=(2, 2), se=("mycse", {"r": 4}))
"""

from __future__ import annotations

from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import LayerFactory

from scse_monai.networks.blocks.squeeze_and_excitation import ChannelSpatialSELayer, SpatialSELayer

__all__ = ["SE"]

SE = LayerFactory(name="Squeeze-and-excitation layers", description="Factory for SE recalibration layers.")
SE.add_factory_class("cse", ChannelSELayer, "Spatial squeeze, channel excitation (Hu et al.; MONAI ChannelSELayer).")
SE.add_factory_class("sse", SpatialSELayer, "Channel squeeze, spatial excitation (Roy et al. 2019).")
SE.add_factory_class("scse", ChannelSpatialSELayer, "Concurrent spatial and channel SE (Roy et al. 2019).")
