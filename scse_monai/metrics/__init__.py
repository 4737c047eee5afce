"""Evaluation metrics: the CHAOS challenge metrics and scores, and an ignite handler that saves them.

The handler lives in :mod:`scse_monai.metrics.handler` (``CHAOSMetricsSaver``) and is not imported here, so that the
metric functions need neither ignite nor MONAI.
"""

from __future__ import annotations

from .chaos import (
    METRIC_KEYS,
    ORGANS,
    as_voxel_to_mm,
    assd_mssd,
    border_voxels,
    chaos_dicom_geometry,
    chaos_scores,
    compute_chaos_metrics,
    dice,
    evaluate_label_volumes,
    ravd,
    score_assd,
    score_dice,
    score_mssd,
    score_ravd,
    summarise_cases,
    surface_distances,
)

__all__ = [
    "METRIC_KEYS",
    "ORGANS",
    "as_voxel_to_mm",
    "assd_mssd",
    "border_voxels",
    "chaos_dicom_geometry",
    "chaos_scores",
    "compute_chaos_metrics",
    "dice",
    "evaluate_label_volumes",
    "ravd",
    "score_assd",
    "score_dice",
    "score_mssd",
    "score_ravd",
    "summarise_cases",
    "surface_distances",
]
