from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from scse_monai.apps.chaos.labelmaps import find_prediction, grid_mapping
from scse_monai.errors import InvalidInputError

AFFINE = np.array([[-0.8, 0, 0, 10], [0, -0.7, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1.0]])


def _world(shape, affine):
    """World coordinates of every voxel, shape (*shape, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    return (idx @ affine[:3, :3].T + affine[:3, 3]).reshape(*shape, 3)


def _stored(arr, axes, flips):
    out = np.transpose(arr, axes)
    return np.flip(out, flips) if flips else out


@pytest.mark.parametrize("axes,flips", [((0, 1, 2), ()), ((0, 1, 2), (0,)), ((1, 0, 2), ()), ((2, 0, 1), (1, 2))])
def test_grid_mapping_puts_every_voxel_back_at_its_world_position(axes, flips) -> None:
    shape = (4, 5, 6)
    ref = np.arange(np.prod(shape)).reshape(shape)
    pred = _stored(ref, axes, flips)  # the same voxels stored in another axis order/direction
    # its affine, fitted independently: pred index p holds ref index r(p), so A_pred = A_ref @ T with T: p -> r
    r_of_p = np.stack([_stored(i, axes, flips) for i in np.indices(shape)], -1).reshape(-1, 3)
    p_idx = np.indices(pred.shape).reshape(3, -1).T
    homog = np.c_[p_idx, np.ones(len(p_idx))]
    t = np.linalg.lstsq(homog, np.c_[r_of_p, np.ones(len(p_idx))], rcond=None)[0].T
    affine = AFFINE @ t
    np.testing.assert_allclose(_world(pred.shape, affine).reshape(-1, 3),
                               _world(shape, AFFINE)[tuple(r_of_p.T)], atol=1e-9)
    mapping = grid_mapping(pred.shape, affine, shape, AFFINE, "p.nii.gz", "g.nii.gz", reorient=True)
    np.testing.assert_array_equal(mapping.apply(pred), ref)
    if axes != (0, 1, 2) or flips:
        with pytest.raises(InvalidInputError, match="p.nii.gz: prediction"):
            grid_mapping(pred.shape, affine, shape, AFFINE, "p.nii.gz", "g.nii.gz", reorient=False)


@pytest.mark.parametrize("change,message", [
    (lambda a: a @ np.diag([-1.0, 1, 1, 1]), "affine differs"),  # mirrored in place: other voxels
    (lambda a: a + np.array([[0, 0, 0, 0.8]] * 3 + [[0, 0, 0, 0]]), "affine differs"),  # shifted
    (lambda a: a @ np.diag([2.0, 1, 1, 1]), "affine differs"),  # another spacing
    (lambda a: a * np.array([[1], [0], [1], [1]]), "degenerate"),  # a zero row
])
def test_grid_mapping_refuses_other_grids(change, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        grid_mapping((4, 5, 6), change(AFFINE), (4, 5, 6), AFFINE, "p.nii.gz", "g.nii.gz", reorient=True)


def test_find_prediction_exact_names(tmp_path) -> None:
    for name in ("ct_1_2.nii.gz", "ct_10.nii.gz", "ct_1_seg_old.nii.gz", ".ct_1.nii.gz"):
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), tmp_path / name)
    with pytest.raises(InvalidInputError, match="no prediction for case 'ct_1'"):
        find_prediction(tmp_path, "ct_1")
    assert find_prediction(tmp_path, "ct_1_2") == tmp_path / "ct_1_2.nii.gz"
