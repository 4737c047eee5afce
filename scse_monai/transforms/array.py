"""Array transforms for CHAOS-style CT and MR volumes (what MONAI does not have as one transform)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import ScaleIntensityRange, ScaleIntensityRangePercentiles, Transform
from monai.utils import TransformBackends, convert_to_tensor

from scse_monai.errors import InvalidInputError

__all__ = ["ModalityNormalizeIntensity", "CheckImage", "infer_modality", "MR_MODALITIES", "check_finite",
           "check_source_file", "resampled_size"]

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


_VERIFIED: dict[tuple[str, int, int], bool] = {}


def check_source_file(img: object) -> None:
    """Verify the gzip stream of the file ``img`` was loaded from (its ``meta["filename_or_obj"]``), once per file.

    LoadImage (nibabel) stops reading before the gzip trailer, so a ``.nii.gz`` with a bad CRC would load as if
    intact; :func:`scse_monai.data.nifti.check_gzip_stream` reads the whole stream. A file is verified once per
    process and version (path, size, modification time), not every epoch.

    Raises:
        InvalidInputError: naming the file when its stream is damaged.
    """
    from scse_monai.data.nifti import check_gzip_stream

    meta = getattr(img, "meta", None) or {}
    source = meta.get("filename_or_obj")
    if not isinstance(source, str | os.PathLike) or not str(source).lower().endswith(".gz"):
        return
    try:
        st = os.stat(source)
    except OSError:
        return  # not a file (any more): nothing to verify
    key = (str(source), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        check_gzip_stream(source)
        _VERIFIED[key] = True


def resampled_size(affine: np.ndarray, shape: Sequence[int], pixdim: Sequence[float] | None = None) \
        -> tuple[np.ndarray, np.ndarray]:
    """Extent (mm) of a volume along its voxel axes, and its size (voxels) after ``Orientationd`` + ``Spacingd``.

    Both are given in RAS order (the order after ``Orientationd(axcodes="RAS")``): the voxel axis closest to each
    world axis. ``Spacingd`` keeps the grid's orientation and scales each axis to the ``pixdim`` entry (one <= 0, or
    a missing one, keeps that axis' voxel size), so the size is extent / pixdim per axis.

    Args:
        affine: the 4x4 voxel -> world affine.
        shape: the spatial shape (3 entries).
        pixdim: the target voxel sizes (mm) in RAS order, or ``None`` for the original ones.

    Returns:
        ``(extent in mm, resampled size in voxels)``, one entry per axis in RAS order.
    """
    import nibabel as nib

    a = np.asarray(affine, dtype=np.float64)
    sizes = np.linalg.norm(a[:3, :3], axis=0)
    extent_voxel = sizes * np.asarray(shape, dtype=np.float64)
    axis_of = nib.io_orientation(a)[:, 0]
    order = [int(w) if np.isfinite(w) else k for k, w in enumerate(axis_of)]
    extent, spacing = np.empty(3), np.empty(3)
    extent[order], spacing[order] = extent_voxel, sizes
    target = np.zeros(3)
    given = [float(v) for v in (pixdim or [])][:3]
    target[: len(given)] = given
    spacing = np.where(target > 0, target, spacing)
    return extent, np.ceil(extent / np.maximum(spacing, 1e-12) - 1e-6)


class CheckImage(Transform):
    """Fail early, with the file name, on an image of the wrong rank or channel count or with NaN/Inf voxels.

    Without it such inputs fail deep inside a convolution with a shape error that names neither the file nor what
    was expected.

    Before anything resamples the image it also refuses, naming the file and the size, a 3D volume whose affine
    implies a gigantic resampled size (``Spacingd`` would allocate it first): a field of view beyond
    ``max_extent_mm`` along a world axis, or, when ``pixdim`` is given (the ``Spacingd`` target), more than
    ``max_voxels`` voxels after resampling. And it verifies the whole gzip stream of a ``.nii.gz`` source file
    (:func:`check_source_file`), which the loader does not.

    Args:
        spatial_dims: expected number of spatial dimensions (the image is channel-first).
        channels: expected number of channels, or ``None`` for any.
        finite: also require finite intensities.
        pixdim: the voxel sizes the image is resampled to next (entries <= 0 keep the original), or ``None``.
        max_extent_mm: largest field of view (mm) along a world axis; 5 m holds any body scan.
        max_voxels: largest resampled size (voxels, per channel) when ``pixdim`` is given.
        verify_source: verify the gzip stream of the source file.

    Raises:
        InvalidInputError: naming the source file and what was expected.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_dims: int = 3, channels: int | None = 1, finite: bool = True,
                 pixdim: Sequence[float] | None = None, max_extent_mm: float = 5000.0, max_voxels: int = 2**30,
                 verify_source: bool = True) -> None:
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.finite = finite
        self.pixdim = None if pixdim is None else [float(p) for p in pixdim]
        self.max_extent_mm = float(max_extent_mm)
        self.max_voxels = int(max_voxels)
        self.verify_source = verify_source

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
        if self.spatial_dims == 3:
            self._check_resampled_size(img, shape[1:])
        if self.verify_source:
            check_source_file(img)
        if self.finite:
            check_finite(img)
        return img

    def _check_resampled_size(self, img: NdarrayOrTensor, shape: Sequence[int]) -> None:
        affine = getattr(img, "affine", None)
        if affine is None:
            return
        affine = np.asarray(convert_to_tensor(affine, track_meta=False).detach().cpu(), dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise InvalidInputError(f"voxel-to-world affine is not a finite 4x4 matrix ({affine.tolist()})",
                                    _source_name(img))
        fov, size = resampled_size(affine, shape, self.pixdim)
        voxels = float(np.prod(size))
        what = " x ".join(str(int(v)) for v in size)
        if np.any(fov > self.max_extent_mm):
            raise InvalidInputError(
                f"field of view {' x '.join(f'{v:.6g}' for v in fov)} mm (shape {tuple(int(v) for v in shape)}, voxel "
                f"sizes {np.round(np.linalg.norm(affine[:3, :3], axis=0), 6).tolist()} mm) exceeds max_extent_mm "
                f"{self.max_extent_mm:g}, so resampling would allocate a gigantic volume (at 1 mm voxels: "
                f"{' x '.join(str(int(np.ceil(v))) for v in fov)}); expected a body scan's affine", _source_name(img))
        if self.pixdim is not None and voxels > self.max_voxels:
            raise InvalidInputError(
                f"resampled to pixdim {self.pixdim} the volume would have {what} = {voxels:.4g} voxels "
                f"({voxels * 4 / 2**30:.1f} GiB as float32), more than max_voxels {self.max_voxels}; expected a "
                "smaller field of view or a coarser pixdim", _source_name(img))
