from .sedynunet import SEDynUNet
from .seunet import SEUNet

__all__ = ["SEDynUNet", "SEUNet"]
