from .sedynunet import SEDynUNet
from .sesegresnet import SESegResNet
from .seunet import PAPER_POSITIONS, PLACEMENT_VARIANTS, SEUNET_PLACEMENTS, SEUNet, resolve_placement

__all__ = [
    "SEDynUNet",
    "SESegResNet",
    "SEUNet",
    "PAPER_POSITIONS",
    "PLACEMENT_VARIANTS",
    "SEUNET_PLACEMENTS",
    "resolve_placement",
]
