"""Reading a NIfTI file completely and safely: declared size checked against the file before any allocation.

nibabel reads the header lazily and allocates the whole declared array before it finds out that the file is short:
a header declaring 32000 x 32000 x 12 voxels with 1 KB of data asks for tens of GiB. Here the data size is checked
first (file size for ``.nii``; for ``.nii.gz`` the whole stream is read in bounded memory, which also verifies its
CRC), then every voxel is read, so a truncated or corrupt file fails here, naming the file, rather than half-way
through a network or a metric (or, with a bad CRC, not at all).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import check_regular_file

__all__ = ["read_nifti", "check_affine", "check_gzip_stream"]

_CHUNK = 1 << 20


def check_gzip_stream(path: str | os.PathLike) -> int:
    """Read the whole gzip stream of ``path`` in bounded memory, so that its CRC and length are verified.

    nibabel (like any reader that stops after the voxels it needs) never reaches the gzip trailer, so a file whose
    data fails its CRC would be read as if intact. Every compressed input -- an image to segment, a label map, a
    reference to score -- goes through here.

    Returns:
        The number of decompressed bytes.

    Raises:
        InvalidInputError: naming the file when the stream is damaged (bad CRC or length, truncated, not gzip).
    """
    path = Path(path)
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        if isinstance(e, OSError) and not isinstance(e, gzip.BadGzipFile) and e.errno is not None:
            raise InvalidInputError(f"cannot read ({e.strerror or e})", path) from e
        raise InvalidInputError(f"damaged gzip stream ({type(e).__name__}: {e}); expected an intact .gz file "
                                "(the whole stream is checked against its CRC)", path) from e
    return total


def _data_bytes_available(path: Path, offset: int) -> int:
    """How many data bytes ``path`` holds after ``offset`` (for ``.gz``: the whole stream is read, CRC checked)."""
    if not path.name.lower().endswith(".gz"):
        return max(0, os.path.getsize(path) - offset)
    return max(0, check_gzip_stream(path) - offset)


def check_affine(affine: np.ndarray, path: object) -> np.ndarray:
    """A voxel -> mm affine that can map voxels to distinct points: finite, invertible 3x3 part.

    Raises:
        InvalidInputError: for a non-finite or singular matrix (e.g. a zero row or column: distances would be 0).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise InvalidInputError(f"voxel-to-world affine is not a finite 4x4 matrix ({a.tolist()})", path)
    lengths = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(lengths < 1e-6) or abs(np.linalg.det(a[:3, :3])) < 1e-9 * max(float(np.prod(lengths)), 1e-300):
        raise InvalidInputError(
            f"degenerate voxel-to-world affine (voxel sizes {np.round(lengths, 6).tolist()} mm, singular matrix); "
            "expected three independent voxel axes",
            path,
        )
    return a


def read_nifti(path: str | os.PathLike, what: str = "NIfTI image"):
    """Read every voxel of a NIfTI file after checking its declared size against the file.

    Args:
        path: a ``.nii`` or ``.nii.gz`` regular file.
        what: what the file is, for messages (e.g. ``"label map"``).

    Returns:
        ``(data, affine)``: the voxel array as stored (scaling applied by nibabel) and the float64 affine.

    Raises:
        InvalidInputError: naming the file when it is not a regular file, not NIfTI, shorter than its header
            declares, corrupt, of a non-numeric (RGB, complex) data type, or has a degenerate affine.
    """
    import nibabel as nib

    path = Path(path)
    check_regular_file(path, what)
    try:  # nibabel reports an unreadable file as "Could not read file", without the reason
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise InvalidInputError(f"cannot read {what} ({e.strerror or e})", path) from e
    try:
        img = nib.load(str(path))
        header = img.header
        dtype = np.dtype(header.get_data_dtype())
        if dtype.names is not None or dtype.kind not in "biuf":
            raise InvalidInputError(f"{what} has data type {dtype} (RGB or complex); expected real numbers", path)
        shape = tuple(int(s) for s in img.shape)
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset = int(getattr(img.dataobj, "offset", 0))  # where nibabel will start reading voxels
        available = _data_bytes_available(path, offset)
        if available < needed:
            raise InvalidInputError(
                f"{what} declares {'x'.join(map(str, shape))} voxels of {dtype} ({needed} bytes) but the file holds "
                f"{available}; expected a complete file",
                path,
            )
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except InvalidInputError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError, MemoryError) as e:
        # nibabel and gzip raise all of these for damaged files
        raise InvalidInputError(f"unreadable NIfTI file ({type(e).__name__}: {e}); expected a {what}", path) from e
    return data, check_affine(affine, path)
