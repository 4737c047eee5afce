"""String enums used in configs."""

from __future__ import annotations

from monai.utils.enums import StrEnum

__all__ = ["SEAggregation"]


class SEAggregation(StrEnum):
    """How :class:`~scse_monai.networks.blocks.ChannelSpatialSELayer` combines the cSE and sSE branches.

    See Roy et al., TMI 2019, Table II (https://arxiv.org/abs/1808.08127).

    - ``MAX``: element-wise max-out, max(U_cSE, U_sSE); TMI 2019 default and the authors' code.
    - ``ADD``: U_cSE + U_sSE; MICCAI 2018 version and segmentation_models_pytorch.
    - ``MUL``: U_cSE * U_sSE.
    - ``CONCAT``: concatenate along channels, then a 1x1 convolution 2C -> C (see the layer's docstring).
    """

    MAX = "max"
    ADD = "add"
    MUL = "mul"
    CONCAT = "concat"
