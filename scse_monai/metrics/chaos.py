"""The CHAOS challenge metrics (DICE, RAVD, ASSD, MSSD), their scores, and multi-organ / multi-case summaries.

Reproduces the organisers' evaluation code (emrekavur/CHAOS-evaluation, ``Python/CHAOSmetrics.py`` and
``Matlab/CHAOSMetrics.m``; Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation",
Medical Image Analysis 69 (2021) 101950, https://arxiv.org/abs/2001.06535), on binary volumes per organ:

- DICE = 2|A n B| / (|A| + |B|);
- RAVD = ||B| - |A|| / |A| * 100, in **percent** of the reference volume;
- border voxels = V xor erosion(V) with the 6-connected structuring element and ``border_value=1`` (the volume edge
  does not create border voxels);
- border voxel indices are mapped to millimetres with a 4x4 voxel -> mm matrix (see :func:`chaos_dicom_geometry`
  for the organisers' own matrix, or any NIfTI affine) or a spacing tuple;
- nearest-neighbour distances from every border voxel of one volume to the border of the other, in both directions,
  pooled: ASSD = their mean, MSSD = their maximum (mm);
- scores (method PDF section 2): DICE 0 if s < 0.8 else 100 s; RAVD 0 if s > 5 else 100 - 20 s; ASSD 0 if s > 15 else
  100 - 20/3 s; MSSD 0 if s > 60 else 100 - 5/3 s; the CHAOS score is the mean of the four.

Argument order is MONAI's ``(pred, ref)`` (``y_pred, y``) everywhere in this module, the reverse of the organisers'
``(Vref, Vseg)``; all four metrics except RAVD are symmetric, and RAVD always divides by the reference.

Edge cases, which the official Python code leaves undefined (division by zero, empty KD-tree):

=============================== ====== ====== =========================== ======================================
case                            DICE   RAVD   ASSD / MSSD                 multi-organ (:func:`evaluate_label_volumes`)
=============================== ====== ====== =========================== ======================================
both empty                      1      0      0                           organ skipped (absent from the reference)
reference empty, pred not       0      inf    volume diagonal (mm)        organ skipped (absent from the reference)
pred empty, reference not       0      100    volume diagonal (mm)        evaluated (worst scores)
=============================== ====== ====== =========================== ======================================

The "volume diagonal" follows the MATLAB code's worst-case distance ``dist(size(Vref), 0)``, but in millimetres
(the length of the voxel-grid diagonal mapped through the geometry) so that units stay consistent. A non-empty mask
that fills the whole volume has no border voxels (``border_value=1``); unless both masks are identical (distances 0)
its distances are the diagonal too, as in MATLAB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from scse_monai.data.labels import ORGANS
from scse_monai.errors import InvalidInputError

__all__ = [
    "ORGANS",
    "METRIC_KEYS",
    "Geometry",
    "as_voxel_to_mm",
    "chaos_dicom_geometry",
    "border_voxels",
    "dice",
    "ravd",
    "surface_distances",
    "assd_mssd",
    "score_dice",
    "score_ravd",
    "score_assd",
    "score_mssd",
    "chaos_scores",
    "compute_chaos_metrics",
    "evaluate_label_volumes",
    "mean_record",
    "summarise_cases",
]


#: keys of one metric record, in output order.
METRIC_KEYS: tuple[str, ...] = (
    "dice",
    "ravd",
    "assd",
    "mssd",
    "score_dice",
    "score_ravd",
    "score_assd",
    "score_mssd",
    "score",
)

#: a 4x4 voxel-index -> mm matrix, or a voxel size ``(sx, sy, sz)`` in mm along the array axes.
Geometry = np.ndarray | Sequence[float]


def as_voxel_to_mm(geometry: Geometry) -> np.ndarray:
    """Normalise ``geometry`` to a 4x4 float64 matrix mapping homogeneous voxel indices ``(i, j, k, 1)`` to mm.

    Args:
        geometry: a 4x4 matrix (e.g. a NIfTI affine or :func:`chaos_dicom_geometry`) or a 3-sequence of voxel sizes
            in mm along the array axes.

    Raises:
        InvalidInputError: if it is neither, or not finite.
    """
    g = np.asarray(geometry, dtype=np.float64)
    if g.shape == (3,):
        if np.any(g <= 0):
            raise InvalidInputError(f"voxel spacing {tuple(g)} must be positive (mm)")
        g = np.diag([*g, 1.0])
    if g.shape != (4, 4) or not np.all(np.isfinite(g)):
        raise InvalidInputError(f"geometry must be a 4x4 voxel->mm matrix or 3 spacings in mm, got shape {g.shape}")
    return g


def chaos_dicom_geometry(
    iop: Sequence[float],
    pixel_spacing: Sequence[float],
    ipp_first: Sequence[float],
    ipp_last: Sequence[float],
    n: int,
) -> np.ndarray:
    """The organisers' voxel -> mm matrix for ``(column, row, slice)`` arrays, in DICOM LPS millimetres.

    :func:`scse_monai.data.dicom.dicom_affine` with ``convention="chaos"`` (the one DICOM geometry function; its
    docstring explains the organisers' row/column transposition that this reproduces).

    Args:
        iop: ImageOrientationPatient of the first file (6 values).
        pixel_spacing: PixelSpacing of the first file (row spacing, column spacing).
        ipp_first: ImagePositionPatient of the first file in name order.
        ipp_last: ImagePositionPatient of the last file in name order.
        n: number of DICOM files.
    """
    from scse_monai.data.dicom import dicom_affine

    return dicom_affine(iop, pixel_spacing, ipp_first, ipp_last, n, convention="chaos")


def border_voxels(mask: np.ndarray) -> np.ndarray:
    """Border of a binary 3D mask as the organisers define it: ``V xor erosion(V)``, 6-connected, ``border_value=1``.

    MONAI's ``get_mask_edges`` crops and erodes with a zero border, which marks voxels on the volume edge as border;
    the official code does not, so this is written with :func:`scipy.ndimage.binary_erosion` directly.
    """
    mask = np.asarray(mask, dtype=bool)
    struct = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=struct, border_value=1)


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise InvalidInputError(
            f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}; expected the same voxel grid"
        )
    if pred.ndim != 3:
        raise InvalidInputError(f"expected 3D volumes, got {pred.ndim}D")
    return pred, ref


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """DICE = 2|A n B| / (|A| + |B|); 1.0 when both are empty."""
    pred, ref = _check_pair(pred, ref)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total


def ravd(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative absolute volume difference in percent of the reference: ``||B| - |A|| / |A| * 100``.

    0 when both are empty, ``inf`` when only the reference is empty.
    """
    pred, ref = _check_pair(pred, ref)
    a, b = int(ref.sum()), int(pred.sum())
    if a == 0:
        return 0.0 if b == 0 else math.inf
    return abs(b - a) / a * 100.0


def _diagonal_mm(shape: Sequence[int], m: np.ndarray) -> float:
    return float(np.linalg.norm(m[:3, :3] @ np.asarray(shape, dtype=np.float64)))


def surface_distances(pred: np.ndarray, ref: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances (mm) between the border voxels of ``pred`` and ``ref``, both directions.

    Args:
        pred: binary 3D prediction.
        ref: binary 3D reference, same shape.
        geometry: see :func:`as_voxel_to_mm`.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: for every border voxel of ``pred`` its distance to the nearest border voxel of
        ``ref``, and vice versa. Empty arrays if either border set is empty.
    """
    pred, ref = _check_pair(pred, ref)
    m = as_voxel_to_mm(geometry)
    pts = []
    for mask in (pred, ref):
        idx = np.argwhere(border_voxels(mask)).astype(np.float64)
        pts.append(idx @ m[:3, :3].T + m[:3, 3])
    if len(pts[0]) == 0 or len(pts[1]) == 0:
        return np.zeros(0), np.zeros(0)
    # cKDTree gives exact Euclidean nearest neighbours for any affine (the organisers use a KD-tree too); MONAI's
    # distance-transform helpers only support axis-aligned spacing and a different border definition.
    pred_to_ref = cKDTree(pts[1]).query(pts[0], k=1)[0]
    ref_to_pred = cKDTree(pts[0]).query(pts[1], k=1)[0]
    return pred_to_ref, ref_to_pred


def assd_mssd(pred: np.ndarray, ref: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """ASSD and MSSD in mm: mean and max of the pooled border distances of :func:`surface_distances`.

    Identical masks (including both empty) give ``(0, 0)``; otherwise, if either border set is empty, both are the
    volume diagonal in mm (the MATLAB code's worst-case distance).
    """
    pred, ref = _check_pair(pred, ref)
    if np.array_equal(pred, ref):
        return 0.0, 0.0
    d1, d2 = surface_distances(pred, ref, geometry)
    if d1.size == 0 or d2.size == 0:
        diag = _diagonal_mm(pred.shape, as_voxel_to_mm(geometry))
        return diag, diag
    pooled = np.concatenate([d1, d2])
    return float(pooled.mean()), float(pooled.max())


def score_dice(s: float) -> float:
    """CHAOS DICE score: 0 if ``s < 0.8`` else ``100 s``."""
    return 0.0 if s < 0.8 else 100.0 * s


def score_ravd(s: float) -> float:
    """CHAOS RAVD score (``s`` in percent): 0 if ``s > 5`` else ``100 - 20 s``."""
    return 0.0 if s > 5 else 100.0 - 20.0 * s


def score_assd(s: float) -> float:
    """CHAOS ASSD score (``s`` in mm): 0 if ``s > 15`` else ``100 - (20/3) s``."""
    return 0.0 if s > 15 else 100.0 - 20.0 / 3.0 * s


def score_mssd(s: float) -> float:
    """CHAOS MSSD score (``s`` in mm): 0 if ``s > 60`` else ``100 - (5/3) s``."""
    return 0.0 if s > 60 else 100.0 - 5.0 / 3.0 * s


def chaos_scores(metrics: Mapping[str, float]) -> dict[str, float]:
    """The four CHAOS scores of a ``{"dice", "ravd", "assd", "mssd"}`` record and their mean ``"score"``."""
    out = {
        "score_dice": score_dice(metrics["dice"]),
        "score_ravd": score_ravd(metrics["ravd"]),
        "score_assd": score_assd(metrics["assd"]),
        "score_mssd": score_mssd(metrics["mssd"]),
    }
    out["score"] = float(np.mean(list(out.values())))
    return out


def compute_chaos_metrics(pred: np.ndarray, ref: np.ndarray, geometry: Geometry) -> dict[str, float]:
    """All CHAOS metrics and scores for one organ.

    Args:
        pred: binary 3D prediction (any non-zero voxel is foreground, as in the official readers).
        ref: binary 3D reference of the same shape.
        geometry: 4x4 voxel -> mm matrix or voxel spacing, see :func:`as_voxel_to_mm`.

    Returns:
        ``{"dice", "ravd" (%), "assd" (mm), "mssd" (mm), "score_dice", "score_ravd", "score_assd", "score_mssd",
        "score"}`` as Python floats; edge cases as in the module docstring.

    Raises:
        InvalidInputError: on a shape mismatch or a malformed geometry.

    Example::

        >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
        >>> compute_chaos_metrics(a, a, (1.0, 1.0, 2.0))["score"]
        100.0
    """
    pred, ref = _check_pair(pred, ref)
    as_voxel_to_mm(geometry)
    assd, mssd = assd_mssd(pred, ref, geometry)
    out = {"dice": dice(pred, ref), "ravd": ravd(pred, ref), "assd": assd, "mssd": mssd}
    out.update(chaos_scores(out))
    return out


def mean_record(records: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each of :data:`METRIC_KEYS` over ``records`` (e.g. over the organs of a case)."""
    records = list(records)
    return {k: float(np.mean([r[k] for r in records])) for k in METRIC_KEYS}


def evaluate_label_volumes(
    pred: np.ndarray,
    ref: np.ndarray,
    affine_or_spacing: Geometry,
    organs: Mapping[int, str] | None = None,
) -> dict[str, dict[str, float]]:
    """CHAOS metrics for every organ of a label map, and their mean.

    Each organ is evaluated as its own binary volume (``label == value``). Organs absent from the reference are
    skipped (no entry, not in the mean), whatever the prediction holds there.

    Args:
        pred: predicted label map (labels of :data:`ORGANS`, 0 background), 3D.
        ref: reference label map, same shape.
        affine_or_spacing: 4x4 voxel -> mm matrix (NIfTI affine, :func:`chaos_dicom_geometry`) or spacing in mm.
        organs: label -> name; defaults to :data:`ORGANS`.

    Returns:
        ``{"<organ>": {METRIC_KEYS...}, ..., "mean": {METRIC_KEYS...}}``; the mean is over the evaluated organs (its
        ``"score"`` equals the mean of the organs' scores). Empty dict if the reference holds none of the organs.

    Raises:
        InvalidInputError: on a shape mismatch or a malformed geometry.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise InvalidInputError(
            f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}; expected the same voxel grid"
        )
    organs = ORGANS if organs is None else organs
    out: dict[str, dict[str, float]] = {}
    for value, name in organs.items():
        r = ref == value
        if not r.any():
            continue
        out[name] = compute_chaos_metrics(pred == value, r, affine_or_spacing)
    if out:
        out["mean"] = mean_record(out.values())
    return out


def summarise_cases(cases: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Average per-case results (each as returned by :func:`evaluate_label_volumes`) over cases.

    Returns:
        ``{"<organ>": mean over the cases where that organ was evaluated, ..., "mean": mean of the cases' "mean"
        records}`` (each case counts once, whatever its number of organs). Empty if no case has any organ.
    """
    organ_names: list[str] = []
    for res in cases.values():
        organ_names += [o for o in res if o != "mean" and o not in organ_names]
    out = {o: mean_record(res[o] for res in cases.values() if o in res) for o in organ_names}
    means = [res["mean"] for res in cases.values() if "mean" in res]
    if means:
        out["mean"] = mean_record(means)
    return out
