"""Scoring segmentations with the official CHAOS metrics: one case given as files, or every case of a datalist.

The rules (which geometry, how PNG values become labels) are documented in :mod:`scse_monai.apps.chaos.evaluate`,
the command that calls these functions. Every case is scored by the same MONAI metric object the bundle uses
(:class:`~scse_monai.metrics.CHAOSMetric`), fed by :func:`add_case`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.io import dicom_affine, read_dicom_series
from scse_monai.apps.chaos.labelmaps import find_prediction, grid_mapping, read_label_input, read_nifti_labels
from scse_monai.apps.chaos.labels import ORGANS, labels_from_ct_ground, labels_from_mr_grey
from scse_monai.data.datalist import datalist_entries, entry_path
from scse_monai.data.nifti import check_affine
from scse_monai.errors import InvalidInputError

__all__ = ["chaos_metric", "add_case", "evaluate_case", "evaluate_datalist", "check_spacing"]

logger = logging.getLogger(__name__)


def chaos_metric():
    """A new :class:`~scse_monai.metrics.CHAOSMetric` (torch/MONAI imported only when scoring starts)."""
    from scse_monai.metrics.chaos_metric import CHAOSMetric

    return CHAOSMetric()


def add_case(metric, case: str, seg: np.ndarray, ref: np.ndarray, geometry) -> None:
    """Feed one case (label maps on one grid; a 4x4 voxel -> mm matrix or 3 spacings) to a CHAOS metric object."""
    import torch
    from monai.data import MetaTensor

    from scse_monai.metrics.chaos import as_voxel_to_mm

    affine = torch.as_tensor(as_voxel_to_mm(geometry))
    meta = {"filename_or_obj": case}
    metric(y_pred=[MetaTensor(torch.as_tensor(seg[None]), affine=affine, meta=dict(meta))],
           y=[MetaTensor(torch.as_tensor(ref[None]), affine=affine, meta=dict(meta))])


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """Three finite positive voxel sizes in mm, else :class:`InvalidInputError` naming ``--spacing``."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidInputError(f"--spacing {' '.join(map(str, spacing))}; expected three positive voxel sizes in mm")
    return values  # type: ignore[return-value]


def _pred_png_labels(values: np.ndarray, ct: bool, path: Path) -> np.ndarray:
    if ct:
        # Official readers (cv2 greyscale -> bool, MATLAB logical): any non-zero pixel is the liver.
        return (values != 0).astype(np.uint8)
    if values.max(initial=0) <= 1:  # a 1-bit PNG prediction: liver
        return values.astype(np.uint8)
    labels, unmapped = labels_from_mr_grey(values)
    if unmapped:
        logger.warning("%s: %d non-zero prediction voxels match no organ grey range (background)", path, unmapped)
    return labels


def evaluate_case(
    ground: str | os.PathLike,
    pred: str | os.PathLike,
    dicom: str | os.PathLike | None = None,
    spacing: Sequence[float] | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate one case given as files/folders; see :mod:`scse_monai.apps.chaos.evaluate` for the rules.

    Two NIfTI files are compared in world coordinates: a prediction stored with permuted or flipped axes and the
    matching affine is mapped onto the ground's grid (:func:`~scse_monai.apps.chaos.labelmaps.grid_mapping`); any
    other grid, or a degenerate affine, is refused. A NIfTI prediction is likewise checked against the DICOM geometry
    when ``dicom`` is given.

    Returns:
        The case's record of :meth:`scse_monai.metrics.CHAOSMetric.results`, per organ and ``"mean"``.

    Raises:
        InvalidInputError: on unreadable inputs, a shape, slice-count or grid mismatch, non-binary CT Ground, unknown
            or degenerate geometry, or a reference without any organ.
    """
    spacing = check_spacing(spacing) if spacing is not None else None
    g = read_label_input(ground, "ground")
    p = read_label_input(pred, "prediction")
    modality = ""
    ref_affine = g.affine
    geometry: object
    if dicom is not None:
        series = read_dicom_series(dicom, with_pixels=False)
        if tuple(series.shape) != g.values.shape:
            raise InvalidInputError(
                f"DICOM series has {series.shape[2]} slices of {series.shape[1]}x{series.shape[0]} (rows x columns) "
                f"but the ground has {g.values.shape[2]} of {g.values.shape[1]}x{g.values.shape[0]}; expected one "
                "mask per DICOM slice, same size",
                dicom,
            )
        modality = series.modality.upper()
        if ref_affine is None:
            ref_affine = series.affine
        # the organisers' own voxel -> mm mapping, for identical distances
        geometry = dicom_affine(series.iop, series.pixel_spacing, series.ipp_first, series.ipp_last,
                                len(series.files), convention="chaos")
    elif spacing is not None:
        geometry = spacing
    elif g.affine is not None or p.affine is not None:
        geometry = g.affine if g.affine is not None else p.affine
    else:
        raise InvalidInputError(
            "voxel spacing unknown: PNG slices carry no geometry; pass --dicom DICOM_FOLDER (the organisers' "
            "geometry) or --spacing SX SY SZ (mm)"
        )
    pred_values = p.values
    if p.affine is not None and ref_affine is not None:
        ref_name = g.path.name if g.affine is not None else f"the DICOM series {Path(dicom).name}"
        mapping = grid_mapping(p.values.shape, p.affine, g.values.shape, ref_affine, p.path, ref_name, reorient=True)
        pred_values = mapping.apply(p.values)
    elif p.values.shape != g.values.shape:
        raise InvalidInputError(
            f"shape mismatch: ground {g.path} has {g.values.shape} (columns, rows, slices), prediction has "
            f"{p.values.shape}; expected the same number and size of slices",
            p.path,
        )
    if g.affine is not None and not isinstance(geometry, tuple):
        check_affine(g.affine, g.path)
    if g.kind == "png":
        binary_ground = np.isin(g.values, (0, 1, 255)).all()
        ct = modality == "CT" or (modality == "" and binary_ground)
        if ct:
            ref = labels_from_ct_ground(g.values, str(g.path))
        else:
            ref, unmapped = labels_from_mr_grey(g.values)
            if unmapped:
                logger.warning("%s: %d non-zero Ground voxels match no organ grey range", g.path, unmapped)
    else:
        ct = False
        ref = g.values
    if p.kind == "png":
        seg = _pred_png_labels(pred_values, ct, p.path)
    else:
        seg = (pred_values != 0).astype(np.uint8) if ct else pred_values
    metric = chaos_metric()
    add_case(metric, "case", seg, ref, geometry)
    cases = metric.results()["cases"]
    if not cases:
        raise InvalidInputError("the reference contains none of the organs; nothing to evaluate", g.path)
    return cases["case"]


def evaluate_datalist(
    datalist: str | os.PathLike, pred_dir: str | os.PathLike, folds: Sequence[int] | None = None
) -> dict[str, dict]:
    """Evaluate every labelled datalist entry (optionally only ``folds``) against its prediction in ``pred_dir``.

    Predictions are found by exact case name and compared in world coordinates (see :func:`evaluate_case`).

    Returns:
        :meth:`scse_monai.metrics.CHAOSMetric.results`: ``{"cases": {case: per-organ result}, "mean": summary}``.

    Raises:
        InvalidInputError: on a malformed datalist, a missing/ambiguous prediction, an unreadable file, a grid
            mismatch, or no entry.
    """
    from tqdm import tqdm

    datalist = Path(datalist)
    entries = [e for e in datalist_entries(datalist) if e.get("label")]
    if folds:
        entries = [e for e in entries if e.get("fold") in folds]
    if not entries:
        raise InvalidInputError(f"no labelled entries{f' in folds {list(folds)}' if folds else ''}", datalist)
    # every prediction is found before any volume is read: a missing one fails in a second, not after an hour
    preds = {e["case"]: find_prediction(pred_dir, e["case"]) for e in entries}
    metric = chaos_metric()
    for entry in tqdm(entries, desc="evaluate", unit="case"):
        case = entry["case"]
        ref_path = entry_path(datalist, entry["label"])
        ref, ref_affine = read_nifti_labels(ref_path)
        seg, seg_affine = read_nifti_labels(preds[case])
        mapping = grid_mapping(seg.shape, seg_affine, ref.shape, ref_affine, preds[case], ref_path.name, reorient=True)
        if not np.isin(ref, list(ORGANS)).any():
            logger.warning("%s: reference holds no organ; case skipped", ref_path)
            continue
        add_case(metric, case, mapping.apply(seg), ref, ref_affine)
    return metric.results()
