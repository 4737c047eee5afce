from .sedynunet import SEDynUNet
from .sesegresnet import SESegResNet
from .seunet import SEUNet

__all__ = ["SEDynUNet", "SESegResNet", "SEUNet"]
