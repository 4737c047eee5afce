"""Evaluation metrics: the CHAOS challenge metrics and scores, as functions and as a MONAI cumulative metric.

The functions (:mod:`scse_monai.metrics.chaos`) need neither torch nor MONAI; :class:`CHAOSMetric`
(:mod:`scse_monai.metrics.chaos_metric`, a MONAI ``CumulativeIterationMetric``) is loaded on first use. Its ignite
handler is :class:`scse_monai.handlers.CHAOSMetricHandler`.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    mean_record,
    ravd,
    score_assd,
    score_dice,
    score_mssd,
    score_ravd,
    summarise_cases,
    surface_distances,
)
from .tables import format_table, results_to_json, results_to_rows, rows_to_csv

__all__ = [
    "CHAOSMetric",
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
    "mean_record",
    "ravd",
    "format_table",
    "results_to_json",
    "results_to_rows",
    "rows_to_csv",
    "score_assd",
    "score_dice",
    "score_mssd",
    "score_ravd",
    "summarise_cases",
    "surface_distances",
]

_LAZY = {"CHAOSMetric": "scse_monai.metrics.chaos_metric"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scse_monai.metrics' has no attribute {name!r}")
