"""Readers for a CHAOS case: its DICOM series (the core reader, re-exported) and its Ground PNG stack.

The DICOM series reader, the slice order (:func:`natural_key`, :func:`list_slices`) and the geometry
(:func:`dicom_affine`) live in :mod:`scse_monai.data.dicom`, where the core (inference inputs, CHAOS metrics) uses
them; they are re-exported here for the CHAOS tools. :func:`read_png_stack` reads the organisers' Ground masks in the
same file-name order, so the k-th PNG pairs with the k-th DICOM slice.
"""

from __future__ import annotations

import os

import numpy as np

from scse_monai.data.dicom import DicomSeries, dicom_affine, list_slices, natural_key, read_dicom_series
from scse_monai.errors import InvalidInputError

__all__ = ["DicomSeries", "natural_key", "list_slices", "read_dicom_series", "read_png_stack", "dicom_affine"]


def read_png_stack(folder: str | os.PathLike) -> np.ndarray:
    """Read the ``*.png`` masks of ``folder`` in natural name order as a ``uint8`` array ``(columns, rows, slices)``.

    Raw values are kept: 1-bit PNGs (PIL mode ``"1"``, the CHAOS CT Ground) give 0/1, 8-bit greyscale (mode ``"L"``,
    the MR Ground) gives 0..255. ``stack[:, :, k] == png_k.T``; no flips.

    Raises:
        InvalidInputError: if the folder is missing or empty, a PNG cannot be read, has another mode, or differs in
            size from the first PNG.
    """
    from PIL import Image

    files = list_slices(folder, ".png")
    slices = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in ("1", "L"):
                    raise InvalidInputError(
                        f"PNG mode {mode!r}; expected a 1-bit (mode '1') or 8-bit greyscale (mode 'L') mask", path
                    )
                arr = np.asarray(img, dtype=np.uint8)
        except InvalidInputError:
            raise
        except Exception as e:
            msg = f"unreadable PNG ({type(e).__name__}: {e}); expected a greyscale mask"
            raise InvalidInputError(msg, path) from e
        if slices and arr.shape != slices[0].shape:
            raise InvalidInputError(
                f"mask size {arr.shape[0]}x{arr.shape[1]} (rows x columns) differs from {files[0].name} "
                f"({slices[0].shape[0]}x{slices[0].shape[1]}); expected all masks of a case to have the same size",
                path,
            )
        slices.append(arr)
    return np.ascontiguousarray(np.stack(slices, axis=-1).transpose(1, 0, 2))
