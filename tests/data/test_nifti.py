from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from scse_monai.data.nifti import read_nifti
from scse_monai.errors import InvalidInputError


@pytest.mark.parametrize("gz", [False, True])
def test_declared_size_is_checked_before_reading(tmp_path, gz) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((32000, 32000, 12))  # 49 GB of float32
    hdr.set_data_dtype(np.float32)
    hdr.set_data_offset(352)
    blob = hdr.binaryblock + b"\0" * 4 + os.urandom(1024)
    path = tmp_path / ("big.nii.gz" if gz else "big.nii")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(InvalidInputError, match=r"big\.nii(\.gz)?: NIfTI image declares 32000x32000x12 voxels .* holds "
                                                r"1024; expected a complete file"):
        read_nifti(path)


def test_complete_file_round_trips_and_bad_ones_are_named(tmp_path) -> None:
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ok.nii.gz")
    got, got_affine = read_nifti(tmp_path / "ok.nii.gz")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_allclose(got_affine, affine)
    raw = (tmp_path / "ok.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) - 12])  # gzip trailer gone: CRC never checked
    with pytest.raises(InvalidInputError, match=r"cut\.nii\.gz"):
        read_nifti(tmp_path / "cut.nii.gz")
    nib.save(nib.Nifti1Image(data.astype(np.complex64), affine), tmp_path / "c.nii")
    with pytest.raises(InvalidInputError, match=r"c\.nii: NIfTI image has data type complex64"):
        read_nifti(tmp_path / "c.nii")
