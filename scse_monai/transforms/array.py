"""Array transforms for CHAOS-style CT and MR volumes (what MONAI does not have as one transform)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import NdarrayOrTensor
from monai.transforms import ScaleIntensityRange, ScaleIntensityRangePercentiles, Transform
from monai.utils import TransformBackends, convert_to_tensor

from scse_monai.errors import InvalidInputError

__all__ = ["ModalityNormalizeIntensity", "CheckImage", "infer_modality", "MR_MODALITIES", "check_finite"]

#: modality names that are normalised as MR (the converter writes "t2spir", "t1dual_in", "t1dual_out").
MR_MODALITIES = ("mr", "t1", "t2", "t1dual_in", "t1dual_out", "t2spir")


def _source_name(img: NdarrayOrTensor) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", "input image"))


def check_finite(img: NdarrayOrTensor) -> None:
    """Raise :class:`~scse_monai.errors.InvalidInputError` naming the source file if ``img`` has NaN/Inf voxels."""
    t = convert_to_tensor(img, track_meta=False)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n = int((~torch.isfinite(t)).sum())
        raise InvalidInputError(f"{n} NaN/Inf voxel(s); expected finite intensities", _source_name(img))


def infer_modality(img: NdarrayOrTensor, ct_threshold: float = -500.0) -> str:
    """``"ct"`` if the image contains values below ``ct_threshold`` (air is about -1000 HU), else ``"mr"``.

    MR magnitude images are non-negative, CT in Hounsfield units always contains air (outside the body, in the
    lungs and bowel) far below -500, so the minimum separates them without any header.
    """
    return "ct" if float(convert_to_tensor(img, track_meta=False).min()) < ct_threshold else "mr"


class ModalityNormalizeIntensity(Transform):
    """Scale CT and MR intensities to [0, 1] the way each modality needs.

    - CT: a fixed Hounsfield window (abdominal soft tissue by default), clipped: MONAI's
      :class:`~monai.transforms.ScaleIntensityRange`. HU are absolute, so a fixed window keeps liver, spleen and
      kidneys at the same values in every scan.
    - MR: robust percentile scaling, clipped: MONAI's :class:`~monai.transforms.ScaleIntensityRangePercentiles`.
      MR intensities have no absolute scale and vary with coil, sequence and bias field.

    Args:
        ct_window: (lower, upper) HU mapped to 0 and 1. Defaults to (-175, 250).
        mr_percentiles: (lower, upper) percentiles mapped to 0 and 1. Defaults to (0.5, 99.5).
        ct_threshold: minimum below which an image of unknown modality is taken as CT, see :func:`infer_modality`.

    Raises:
        InvalidInputError: when the image has NaN or Inf voxels (names the source file).
        ValueError: for an unknown modality name.
    """

    backend = ScaleIntensityRange.backend

    def __init__(
        self,
        ct_window: Sequence[float] = (-175.0, 250.0),
        mr_percentiles: Sequence[float] = (0.5, 99.5),
        ct_threshold: float = -500.0,
    ) -> None:
        lo, hi = (float(v) for v in ct_window)
        if not hi > lo:
            raise ValueError(f"ct_window must be (lower, upper) with upper > lower, got {tuple(ct_window)}.")
        self.ct_threshold = ct_threshold
        self.scale_ct = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
        self.scale_mr = ScaleIntensityRangePercentiles(
            lower=float(mr_percentiles[0]), upper=float(mr_percentiles[1]), b_min=0.0, b_max=1.0, clip=True
        )

    def __call__(self, img: NdarrayOrTensor, modality: str | None = None) -> NdarrayOrTensor:
        """Normalise ``img``.

        Args:
            img: channel-first image.
            modality: ``"ct"``, an MR name (``"mr"``, ``"t2spir"``, ``"t1dual_in"``, ``"t1dual_out"``, ...), or
                ``None`` / ``"auto"`` to infer it from the intensities.
        """
        check_finite(img)
        kind = self.modality_kind(img, modality)
        return self.scale_ct(img) if kind == "ct" else self.scale_mr(img)

    def modality_kind(self, img: NdarrayOrTensor, modality: str | None) -> str:
        """``"ct"`` or ``"mr"`` for a modality name, inferring it when ``None``/``"auto"``."""
        if modality is None or str(modality).lower() == "auto":
            return infer_modality(img, self.ct_threshold)
        name = str(modality).lower()
        if name == "ct":
            return "ct"
        if name in MR_MODALITIES or name.startswith(("mr", "t1", "t2")):
            return "mr"
        raise ValueError(f"unknown modality {modality!r}; expected 'ct', 'auto' or an MR name such as 't2spir'.")


class CheckImage(Transform):
    """Fail early, with the file name, on an image of the wrong rank or channel count or with NaN/Inf voxels.

    Without it such inputs fail deep inside a convolution with a shape error that names neither the file nor what
    was expected.

    Args:
        spatial_dims: expected number of spatial dimensions (the image is channel-first).
        channels: expected number of channels, or ``None`` for any.
        finite: also require finite intensities.

    Raises:
        InvalidInputError: naming the source file and what was expected.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_dims: int = 3, channels: int | None = 1, finite: bool = True) -> None:
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.finite = finite

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return ``img`` unchanged if it passes the checks."""
        shape = tuple(img.shape)
        if len(shape) != self.spatial_dims + 1:
            raise InvalidInputError(
                f"expected a channel-first image with {self.spatial_dims} spatial dimensions, got shape {shape}",
                _source_name(img),
            )
        if self.channels is not None and shape[0] != self.channels:
            raise InvalidInputError(f"expected {self.channels} channel(s), got {shape[0]} (shape {shape})",
                                    _source_name(img))
        if self.finite:
            check_finite(img)
        return img
