from .array import MR_MODALITIES, CheckImage, ModalityNormalizeIntensity, check_finite, infer_modality
from .dictionary import CheckImaged, ModalityNormalizeIntensityd

__all__ = [
    "MR_MODALITIES",
    "CheckImage",
    "CheckImaged",
    "ModalityNormalizeIntensity",
    "ModalityNormalizeIntensityd",
    "check_finite",
    "infer_modality",
]
