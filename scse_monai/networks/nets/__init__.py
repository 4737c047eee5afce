from .seunet import SEUNet

__all__ = ["SEUNet"]
