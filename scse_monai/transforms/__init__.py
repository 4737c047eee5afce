from .array import (
    MR_MODALITIES,
    CheckImage,
    ModalityNormalizeIntensity,
    check_finite,
    check_source_file,
    infer_modality,
    resampled_size,
)
from .dictionary import CheckImaged, ModalityNormalizeIntensityd
from .roi import check_roi_size, network_divisor

__all__ = [
    "MR_MODALITIES",
    "CheckImage",
    "CheckImaged",
    "ModalityNormalizeIntensity",
    "ModalityNormalizeIntensityd",
    "check_finite",
    "check_roi_size",
    "check_source_file",
    "infer_modality",
    "network_divisor",
    "resampled_size",
]
