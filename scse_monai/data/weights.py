"""Class weights for the cross-entropy part of the loss."""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from scse_monai.data.labels import NUM_CLASSES
from scse_monai.errors import InvalidInputError

__all__ = ["inverse_frequency_weights"]


def inverse_frequency_weights(
    datalist: Sequence[dict], num_classes: int = NUM_CLASSES, label_key: str = "label", max_ratio: float = 50.0
) -> list[float]:
    """Inverse-frequency class weights from the label volumes of a datalist (the seed recipe's weighting).

    w_c is proportional to 1 / f_c, where f_c is the fraction of labelled voxels of class c over all volumes, scaled
    so that the weights of the classes present average 1. Classes that never occur get weight 0. Ratios are capped at
    ``max_ratio`` times the smallest weight, so a class of a few voxels cannot dominate the loss.

    Args:
        datalist: entries with a label file path under ``label_key``.
        num_classes: number of classes including background; defaults to the label space's
            (:data:`scse_monai.data.labels.NUM_CLASSES`).
        label_key: key of the label path.
        max_ratio: cap on largest / smallest weight.

    Raises:
        InvalidInputError: when a label file is missing or holds values outside ``[0, num_classes)``.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for entry in datalist:
        path = entry[label_key]
        try:
            labels = np.asarray(nib.load(path).dataobj).astype(np.int64)
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as e:
            raise InvalidInputError(f"cannot read label volume ({e})", path) from e
        if labels.min() < 0 or labels.max() >= num_classes:
            raise InvalidInputError(f"label values must be in [0, {num_classes}), got {labels.min()}..{labels.max()}",
                                    path)
        counts += np.bincount(labels.ravel(), minlength=num_classes)
    present = counts > 0
    if not present.any():
        raise InvalidInputError("no labelled voxels in the datalist; expected at least one label volume")
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / counts[present]
    weights[present] = np.minimum(weights[present], weights[present].min() * max_ratio)
    weights[present] /= weights[present].mean()
    return [float(w) for w in weights]
