"""CheckImage's size bound against what MONAI's Orientationd + Spacingd really produce, and the gzip verification."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing

from scse_monai.errors import InvalidInputError
from scse_monai.transforms import CheckImage, check_source_file, resampled_size

AFFINES = {
    "axial": np.diag([0.7, 0.7, 3.0, 1.0]),
    "flipped": np.diag([-0.8, 0.8, -2.5, 1.0]),
    "sagittal": np.array([[0, 0, 3.0, 0], [0.7, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 0, 1]]),
    "rotated 20 degrees": np.array([[0.94 * 0.7, -0.34 * 0.7, 0, 5], [0.34 * 0.7, 0.94 * 0.7, 0, 0], [0, 0, 3.0, -9],
                                    [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("pixdim", [[1.5, 1.5, 0.0], [2.0, 1.0, 4.0]])
def test_resampled_size_matches_spacing(name: str, pixdim: list[float]) -> None:
    shape = (40, 36, 9)
    img = MetaTensor(torch.zeros(1, *shape), affine=torch.as_tensor(AFFINES[name], dtype=torch.float64))
    out = Spacing(pixdim=pixdim)(Orientation(axcodes="RAS")(img))
    _, size = resampled_size(AFFINES[name], shape, pixdim)
    # the estimate is the world bounding box; MONAI's grid may differ by a voxel per axis (rounding, corners)
    assert np.all(np.abs(size - np.array(out.shape[1:])) <= 1), (size, out.shape)


def test_check_image_bounds(tmp_path: Path) -> None:
    img = MetaTensor(torch.zeros(1, 8, 8, 2), affine=torch.diag(torch.tensor([2e3, 1.0, 1.0, 1.0])),
                     meta={"filename_or_obj": "wide.nii"})
    with pytest.raises(InvalidInputError, match=r"wide.nii: field of view 16000 x 8 x 2 mm"):
        CheckImage()(img)
    assert CheckImage(max_extent_mm=2e4)(img) is img
    small = MetaTensor(torch.zeros(1, 8, 8, 2), affine=torch.eye(4), meta={"filename_or_obj": "s.nii"})
    with pytest.raises(InvalidInputError, match=r"s.nii: resampled to pixdim \[0.5, 0.5, 0.0\] .* 16 x 16 x 2"):
        CheckImage(pixdim=[0.5, 0.5, 0.0], max_voxels=500)(small)
    assert CheckImage(pixdim=[0.5, 0.5, 0.0], max_voxels=512)(small) is small


def test_check_source_file_reads_the_whole_stream(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
    img = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": str(path)})
    check_source_file(img)
    blob = bytearray(path.read_bytes())
    blob[-8] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(InvalidInputError, match="x.nii.gz: damaged gzip stream .*CRC"):
        check_source_file(img)  # a new version of the file (size or time changed) is verified again
