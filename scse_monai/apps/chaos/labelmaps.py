"""Label maps on disk: reading NIfTI labels and PNG stacks, finding a case's prediction, and the one grid check.

``scse-monai evaluate`` and ``export-submission`` both read predictions through this module, so that a prediction
is found, read and put on its case's voxel grid the same way for scoring and for the submission.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.io import read_png_stack
from scse_monai.data.nifti import check_affine, read_nifti
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import NIFTI_SUFFIXES, nifti_stem

__all__ = [
    "LabelInput",
    "GridMapping",
    "read_nifti_labels",
    "read_label_input",
    "find_prediction",
    "grid_mapping",
    "PREDICTION_POSTFIX",
]

#: postfix of MONAI SaveImage's output names in the bundle (``<case>_seg.nii.gz``)
PREDICTION_POSTFIX = "seg"


@dataclass
class LabelInput:
    """One ground or prediction input as read from disk.

    Attributes:
        values: raw values, shape ``(x, y, z)`` = (column, row, slice); PNG values as stored, NIfTI labels.
        kind: ``"png"`` (a folder of slices) or ``"nifti"``.
        affine: the NIfTI affine (voxel -> RAS mm), ``None`` for PNG folders.
        path: where it was read from.
    """

    values: np.ndarray
    kind: str
    affine: np.ndarray | None
    path: Path


def _squeeze_channels(shape: tuple[int, ...]) -> tuple[int, ...]:
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def read_nifti_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI label map as ``uint8`` labels of the label space (:data:`~scse_monai.apps.chaos.labels.LABELS`).

    Trailing singleton dimensions (e.g. a channel saved by MONAI) are dropped; float files are accepted when their
    values are whole numbers.

    Raises:
        InvalidInputError: if the file cannot be read completely, is not 3D, has a degenerate affine, or holds values
            other than the labels.
    """
    from scse_monai.apps.chaos.labels import NUM_CLASSES

    path = Path(path)
    data, affine = read_nifti(path, "label map")
    data = data.reshape(_squeeze_channels(data.shape))
    if data.ndim != 3:
        raise InvalidInputError(f"label map has shape {data.shape}; expected a 3D volume", path)
    values = np.unique(data)
    top = NUM_CLASSES - 1
    bad = values[(values != np.round(values)) | (values < 0) | (values > top)] if values.size else values
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:8])
        raise InvalidInputError(f"label map holds values {shown}; expected labels 0..{top}", path)
    return data.astype(np.uint8), affine


def read_label_input(path: str | os.PathLike, role: str) -> LabelInput:
    """Read ``path`` as a NIfTI label file or a folder of PNG slices.

    Args:
        path: a ``.nii``/``.nii.gz`` file or a folder of ``*.png`` slices.
        role: ``"ground"`` or ``"prediction"``, used in messages.

    Raises:
        InvalidInputError: if the path is missing, of another kind, or unreadable.
    """
    path = Path(path)
    if path.is_dir():
        return LabelInput(read_png_stack(path), "png", None, path)
    if nifti_stem(path.name) is not None and path.exists():
        values, affine = read_nifti_labels(path)
        return LabelInput(values, "nifti", affine, path)
    if not path.exists():
        raise InvalidInputError(f"{role} not found; expected a NIfTI label file or a folder of PNG slices", path)
    raise InvalidInputError(f"{role} is neither a .nii/.nii.gz file nor a folder of PNG slices", path)


def find_prediction(pred_dir: str | os.PathLike, case: str, postfix: str = PREDICTION_POSTFIX) -> Path:
    """Find the NIfTI prediction of ``case`` under ``pred_dir`` (searched recursively) by its exact name.

    Accepted names: ``<case>.nii[.gz]`` and ``<case>_<postfix>.nii[.gz]`` (MONAI SaveImage writes
    ``<case>/<case>_seg.nii.gz`` with the bundle's postfix ``seg``). Nothing else matches: ``ct_1`` matches neither
    ``ct_10.nii.gz`` nor ``ct_1_2.nii.gz`` (the prediction of case ``ct_1_2``). Hidden files are ignored.

    Raises:
        InvalidInputError: if ``pred_dir`` is not a folder, or no file or more than one file matches.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InvalidInputError("prediction folder not found", pred_dir)
    wanted = {case, f"{case}_{postfix}"}
    try:
        matches = [
            p for p in pred_dir.rglob("*.nii*")
            if nifti_stem(p.name) in wanted and not p.name.startswith(".") and not p.is_dir()
        ]
    except OSError as e:
        raise InvalidInputError(f"cannot search the prediction folder ({e})", pred_dir) from e
    if not matches:
        raise InvalidInputError(
            f"no prediction for case {case!r}; expected {case}{NIFTI_SUFFIXES[0]}, {case}_{postfix}.nii.gz or "
            f"{case}/{case}_{postfix}.nii.gz",
            pred_dir,
        )
    if len(matches) > 1:
        shown = ", ".join(str(m.relative_to(pred_dir)) for m in sorted(matches))
        raise InvalidInputError(f"ambiguous prediction for case {case!r}: {shown}; expected exactly one", pred_dir)
    return matches[0]


@dataclass(frozen=True)
class GridMapping:
    """How a prediction's voxel axes map onto its reference grid: ``aligned = flip(transpose(pred, axes), flips)``.

    Attributes:
        axes: for each reference axis, the prediction axis it comes from.
        flips: reference axes along which the prediction runs the other way.
    """

    axes: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[int, ...] = ()

    @property
    def identity(self) -> bool:
        """True when the prediction already lies on the reference grid voxel for voxel."""
        return self.axes == (0, 1, 2) and not self.flips

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` on the reference grid."""
        out = np.transpose(values, self.axes)
        return np.ascontiguousarray(np.flip(out, self.flips)) if self.flips else out


def grid_mapping(
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    path: object,
    ref_name: str,
    reorient: bool = False,
    atol: float = 1e-3,
) -> GridMapping:
    """The one grid check: does a prediction (``shape``, ``affine``) cover exactly its reference's voxels in the world?

    Equal shapes and affines give the identity. With ``reorient``, a prediction stored with permuted or flipped axes
    *and the matching affine* (same voxels in world coordinates, e.g. after ``Orientationd`` to RAS) is mapped back
    voxel for voxel; any other grid (resampled, shifted, another spacing) is an error. Without ``reorient`` only the
    identity is accepted (a submission must be on the case's own DICOM grid).

    Raises:
        InvalidInputError: naming ``path`` for a degenerate affine or a prediction on another grid.
    """
    shape, ref_shape = _squeeze_channels(tuple(shape)), tuple(ref_shape[:3])
    a = check_affine(affine, path)
    r = check_affine(ref_affine, ref_name)
    expected = "invert spatial transforms such as Orientationd/Spacingd before saving"
    if len(shape) != 3:
        raise InvalidInputError(f"prediction has shape {shape}; expected a 3D volume", path)
    if shape == ref_shape and np.allclose(a, r, atol=atol):
        return GridMapping()
    # index in the reference grid of each prediction voxel: r_idx = R^-1 A p_idx
    t = np.linalg.solve(r, a)
    m, offset = t[:3, :3], t[:3, 3]
    perm = np.round(m)
    signed_perm = (
        np.allclose(m, perm, atol=atol)
        and np.all(np.abs(perm).sum(axis=0) == 1)
        and np.all(np.abs(perm).sum(axis=1) == 1)
    )
    same_voxel_count = False
    if signed_perm:
        axes = tuple(int(np.flatnonzero(perm[i])[0]) for i in range(3))
        signs = [int(perm[i, axes[i]]) for i in range(3)]
        same_voxel_count = all(ref_shape[i] == shape[axes[i]] for i in range(3))
        ok = same_voxel_count and all(
            abs(offset[i] - (0 if signs[i] > 0 else shape[axes[i]] - 1)) < atol * max(1, shape[axes[i]])
            for i in range(3)
        )
        if ok and reorient:
            return GridMapping(axes, tuple(i for i in range(3) if signs[i] < 0))
    if shape != ref_shape and not same_voxel_count:
        raise InvalidInputError(
            f"prediction shape {shape} differs from {ref_name} {ref_shape}; expected the case's original voxel grid "
            f"(one slice per DICOM file; {expected})",
            path,
        )
    detail = "axes permuted or flipped without covering the same voxels" if signed_perm else "another voxel grid"
    raise InvalidInputError(
        f"prediction affine differs from {ref_name}'s ({detail}); expected the case's original voxel grid ({expected})",
        path,
    )
