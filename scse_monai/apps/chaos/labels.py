"""The CHAOS encodings of the label space: Ground PNG values -> labels, for CT and MR, and labels -> submission PNGs.

The label space itself (:data:`LABELS`, :data:`ORGANS`, :data:`NUM_CLASSES`) is defined once, in
:mod:`scse_monai.data.labels`, and re-exported here.

- CT Ground (liver only) is a 1-bit PNG; the organisers' notes say "any value greater than zero represents the liver".
- MR Ground uses grey levels 63/126/189/252 with tolerance ranges from the organisers' ``NOTES_PLEASE_READ.txt``;
  the half-open intervals (55, 70], (110, 135], (175, 200], (240, 255] are those of nnU-Net v1
  (``Task037_038_Chaos_Challenge.py``) and jonasteuwen/chaos-challenge. Anything else (e.g. the "torsal" value 32)
  is background and counted, so that a converter can report it.
"""

from __future__ import annotations

import numpy as np

from scse_monai.data.labels import LABELS, NUM_CLASSES, ORGANS
from scse_monai.errors import InvalidInputError

__all__ = [
    "LABELS",
    "ORGANS",
    "NUM_CLASSES",
    "GREY_LEVELS",
    "GREY_RANGES",
    "labels_from_ct_ground",
    "labels_from_mr_grey",
    "labels_to_grey",
]

#: label -> grey level of the organisers' MR Ground and submission PNGs.
GREY_LEVELS: dict[int, int] = {1: 63, 2: 126, 3: 189, 4: 252}
# label -> (low, high): grey value v maps to the label when low < v <= high.
GREY_RANGES: dict[int, tuple[int, int]] = {1: (55, 70), 2: (110, 135), 3: (175, 200), 4: (240, 255)}


def labels_from_ct_ground(arr: np.ndarray, case: str = "") -> np.ndarray:
    """CT Ground mask -> labels (liver = 1).

    Args:
        arr: raw Ground values: 0/1 (1-bit PNG read with PIL) or 0/255 (the same PNG read as 8-bit).
        case: case name used in the error message.

    Raises:
        InvalidInputError: if ``arr`` holds values other than 0, 1 and 255 (e.g. an MR grey-level mask): guessing
            would silently mislabel, so the caller must decide.
    """
    arr = np.asarray(arr)
    unexpected = np.setdiff1d(np.unique(arr), [0, 1, 255])
    if unexpected.size:
        shown = ", ".join(str(v) for v in unexpected[:8])
        raise InvalidInputError(
            f"CT Ground holds values {shown}; expected a liver mask with values 0 and 1 (or 255)", case or None
        )
    return (arr > 0).astype(np.uint8)


def labels_from_mr_grey(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """MR Ground grey levels -> labels by the half-open ranges of :data:`GREY_RANGES`.

    Args:
        arr: raw 8-bit Ground values.

    Returns:
        ``(labels, unmapped)``: ``uint8`` labels (:data:`LABELS`) with ``arr``'s shape, and the number of non-zero
        voxels that fall in no range and were therefore set to background.
    """
    arr = np.asarray(arr)
    labels = np.zeros(arr.shape, dtype=np.uint8)
    for label, (low, high) in GREY_RANGES.items():
        labels[(arr > low) & (arr <= high)] = label
    unmapped = int(np.count_nonzero((arr != 0) & (labels == 0)))
    return labels, unmapped


def labels_to_grey(labels: np.ndarray) -> np.ndarray:
    """Labels (:data:`LABELS`) -> CHAOS submission grey levels (0, 63, 126, 189, 252), ``uint8``.

    Raises:
        InvalidInputError: if ``labels`` holds values outside the label space.
    """
    labels = np.asarray(labels)
    unexpected = np.setdiff1d(np.unique(labels), np.arange(NUM_CLASSES))
    if unexpected.size:
        shown = ", ".join(str(v) for v in unexpected[:8])
        raise InvalidInputError(f"labels hold values {shown}; expected 0..{NUM_CLASSES - 1} ({ORGANS})")
    lut = np.array([0] + [GREY_LEVELS[k] for k in sorted(GREY_LEVELS)], dtype=np.uint8)
    return lut[labels.astype(np.intp)]
