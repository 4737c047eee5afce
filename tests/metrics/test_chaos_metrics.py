"""CHAOS metric functions on small hand-made volumes whose values are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import (
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
    surface_distances,
)


def _cube(shape=(12, 12, 12), lo=(2, 2, 2), size=4) -> np.ndarray:
    v = np.zeros(shape, dtype=bool)
    v[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return v


def _faces(lo: int, size: int) -> set[tuple[int, int, int]]:
    """Voxels on the faces of an axis-aligned cube, by enumeration (independent of any erosion)."""
    hi = lo + size - 1
    rng = range(lo, hi + 1)
    return {(i, j, k) for i in rng for j in rng for k in rng if lo in (i, j, k) or hi in (i, j, k)}


def _brute_force_distances(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """All-pairs border distances, pooled, for cross-checking the KD-tree."""
    pa = np.argwhere(border_voxels(a)) * np.asarray(spacing)
    pb = np.argwhere(border_voxels(b)) * np.asarray(spacing)
    d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)
    return np.concatenate([d.min(axis=1), d.min(axis=0)])


def test_border_is_cube_faces_six_connected():
    v = _cube(lo=(2, 2, 2), size=4)
    got = {tuple(int(x) for x in p) for p in np.argwhere(border_voxels(v))}
    assert got == _faces(2, 4)  # 4^3 - 2^3 = 56 voxels, no edge/corner-only extras


def test_border_ignores_volume_edge():
    # border_value=1: a mask touching the volume edge has no border there; a full volume has none at all
    v = np.ones((5, 5, 5), dtype=bool)
    assert not border_voxels(v).any()
    v[:, :, 3:] = False  # slab z in {0,1,2}; only z == 2 is border
    b = border_voxels(v)
    assert b[:, :, 2].all() and not b[:, :, :2].any()


def test_dice_and_ravd_closed_form():
    a = _cube(size=4)  # 64 voxels
    b = _cube(lo=(3, 2, 2), size=4)  # shifted by one: overlap 3*4*4 = 48
    assert dice(b, a) == pytest.approx(2 * 48 / 128)
    c = np.zeros_like(a)
    c[2:6, 2:6, 2:5] = True  # 48 voxels, inside a
    assert ravd(c, a) == pytest.approx(16 / 64 * 100)  # percent, relative to the reference
    assert ravd(a, c) == pytest.approx(16 / 48 * 100)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5), (2.0, 0.5, 3.0)])
def test_shifted_cube_distances_anisotropic(spacing):
    a = _cube(size=4)
    b = _cube(lo=(2, 2, 4), size=4)  # shifted by 2 voxels along z
    sz = spacing[2]
    d_ab, d_ba = surface_distances(b, a, spacing)
    pooled = np.concatenate([d_ab, d_ba])
    # Hausdorff: the far z-face of each cube is 2 slices from the other's nearest border voxel
    assert pooled.max() == pytest.approx(2 * sz)
    np.testing.assert_allclose(np.sort(pooled), np.sort(_brute_force_distances(b, a, spacing)))
    # Closed form per z-layer of a's border (a: z 2..5, b: z 4..7, same x/y range 2..5):
    # z=2 full face (16 voxels) -> 2 sz to b's bottom face; z=3 ring (12) -> sz; z=4 ring (12) lies on b's bottom
    # face -> 0; z=5 face: its ring (12) lies on b's side walls -> 0, its 4 inner voxels are sz from b's bottom face or
    # one in-plane step from b's side wall -> min(sx, sy, sz). b's border mirrors this.
    ring, full = 12, 16
    inner = min(spacing)
    expected_a = [2 * sz] * full + [sz] * ring + [0.0] * ring + [0.0] * ring + [inner] * 4
    assert len(expected_a) == 56
    np.testing.assert_allclose(np.sort(d_ba), np.sort(expected_a))
    assd, mssd = assd_mssd(b, a, spacing)
    assert assd == pytest.approx(2 * sum(expected_a) / 112)  # symmetric by construction
    assert mssd == pytest.approx(2 * sz)


def test_in_plane_shift_uses_in_plane_spacing():
    spacing = (0.5, 3.0, 7.0)
    a = _cube(size=4)
    b = _cube(lo=(2, 5, 2), size=4)  # 3 voxels along axis 1
    assert assd_mssd(b, a, spacing)[1] == pytest.approx(3 * 3.0)
    assert compute_chaos_metrics(b, a, np.diag([*spacing, 1.0]))["mssd"] == pytest.approx(9.0)


def test_affine_translation_and_rotation_do_not_change_distances():
    a = _cube(size=4)
    b = _cube(lo=(3, 2, 4), size=4)
    ref = assd_mssd(b, a, (1.0, 2.0, 3.0))
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.0, 2.0, 3.0])
    aff[:3, 3] = (-100.0, 40.0, 1500.0)
    np.testing.assert_allclose(assd_mssd(b, a, aff), ref)


def test_official_dicom_matrix_maps_row_index_with_x():
    # The official code feeds (row, column, slice) to M; our arrays are (column, row, slice).
    iop, ps, t1, tn, n = (1, 0, 0, 0, 1, 0), (0.8, 0.6), (-185.0, -98.0, 1690.5), (-185.0, -98.0, 1536.5), 78
    m = chaos_dicom_geometry(iop, ps, t1, tn, n)
    official = np.array(
        [
            [iop[0] * ps[0], iop[3] * ps[1], (t1[0] - tn[0]) / (1 - n), t1[0]],
            [iop[1] * ps[0], iop[4] * ps[1], (t1[1] - tn[1]) / (1 - n), t1[1]],
            [iop[2] * ps[0], iop[5] * ps[1], (t1[2] - tn[2]) / (1 - n), t1[2]],
            [0, 0, 0, 1],
        ]
    )
    col, row, sl = 5, 9, 3
    np.testing.assert_allclose(m @ [col, row, sl, 1], official @ [row, col, sl, 1])
    assert (m @ [0, 0, n - 1, 1])[2] == pytest.approx(tn[2])


def test_spacing_and_matrix_geometry_agree():
    a = _cube(size=4)
    b = _cube(lo=(3, 3, 3), size=5)
    np.testing.assert_allclose(assd_mssd(b, a, (0.7, 0.8, 2.0)), assd_mssd(b, a, np.diag([0.7, 0.8, 2.0, 1.0])))


def test_bad_geometry_and_shape():
    a = _cube()
    with pytest.raises(InvalidInputError, match="shape mismatch"):
        compute_chaos_metrics(a, a[:, :, :-1], (1, 1, 1))
    with pytest.raises(InvalidInputError, match="geometry"):
        as_voxel_to_mm(np.eye(3))
    with pytest.raises(InvalidInputError, match="positive"):
        as_voxel_to_mm((1.0, 0.0, 1.0))


@pytest.mark.parametrize(
    "fn, s, expected",
    [
        (score_dice, 0.8, 80.0),  # boundary is included (0 only below 0.8)
        (score_dice, 0.7999, 0.0),
        (score_dice, 1.0, 100.0),
        (score_ravd, 5.0, 0.0),  # 100 - 20*5 = 0 at the boundary too
        (score_ravd, 5.0001, 0.0),
        (score_ravd, 0.0, 100.0),
        (score_ravd, 2.5, 50.0),
        (score_ravd, math.inf, 0.0),
        (score_assd, 15.0, 0.0),
        (score_assd, 15.01, 0.0),
        (score_assd, 3.0, 80.0),
        (score_mssd, 60.0, 0.0),
        (score_mssd, 60.5, 0.0),
        (score_mssd, 30.0, 50.0),
        (score_mssd, 0.0, 100.0),
    ],
)
def test_score_thresholds(fn, s, expected):
    assert fn(s) == pytest.approx(expected, abs=1e-9)


def test_score_just_inside_thresholds_is_continuous():
    assert score_ravd(4.999) == pytest.approx(0.02)
    assert score_assd(14.99) == pytest.approx(100 - 20 / 3 * 14.99)
    assert score_mssd(59.99) == pytest.approx(100 - 5 / 3 * 59.99)


def test_chaos_score_is_mean_of_four():
    s = chaos_scores({"dice": 0.9, "ravd": 1.0, "assd": 1.5, "mssd": 12.0})
    assert s["score"] == pytest.approx((90 + 80 + 90 + 80) / 4)


def test_identical_masks_score_100():
    a = _cube()
    m = compute_chaos_metrics(a, a, (0.7, 0.7, 2.0))
    assert (m["dice"], m["ravd"], m["assd"], m["mssd"], m["score"]) == (1.0, 0.0, 0.0, 0.0, 100.0)


def test_edge_case_both_empty():
    z = np.zeros((4, 5, 6), dtype=bool)
    m = compute_chaos_metrics(z, z, (1, 1, 1))
    assert (m["dice"], m["ravd"], m["assd"], m["mssd"], m["score"]) == (1.0, 0.0, 0.0, 0.0, 100.0)


def test_edge_case_empty_prediction():
    ref = _cube(shape=(10, 12, 14))
    m = compute_chaos_metrics(np.zeros_like(ref), ref, (1.0, 2.0, 3.0))
    diag = math.sqrt(10**2 + 24**2 + 42**2)
    assert m["dice"] == 0.0 and m["ravd"] == 100.0
    assert m["assd"] == pytest.approx(diag) and m["mssd"] == pytest.approx(diag)
    # scores follow the ordinary rules: a 49 mm diagonal is above the ASSD cut-off but not the MSSD one
    assert m["score"] == pytest.approx((0 + 0 + 0 + (100 - 5 / 3 * diag)) / 4)


def test_edge_case_empty_reference():
    pred = _cube(shape=(10, 12, 14))
    m = compute_chaos_metrics(pred, np.zeros_like(pred), (1.0, 1.0, 1.0))
    assert m["dice"] == 0.0 and math.isinf(m["ravd"])
    diag = math.sqrt(10**2 + 12**2 + 14**2)
    assert m["assd"] == pytest.approx(diag) and m["mssd"] == pytest.approx(diag)
    assert m["score_ravd"] == 0.0 and m["score_assd"] == 0.0
    assert m["score"] == pytest.approx((100 - 5 / 3 * diag) / 4)


def test_full_volume_mask_has_no_border_gives_diagonal():
    full = np.ones((6, 6, 6), dtype=bool)
    part = full.copy()
    part[:, :, 4:] = False
    assert assd_mssd(part, full, (1, 1, 1)) == pytest.approx((math.sqrt(108), math.sqrt(108)))
    assert assd_mssd(full, full, (1, 1, 1)) == (0.0, 0.0)


def test_multi_organ_skips_absent_and_averages():
    ref = np.zeros((16, 16, 16), dtype=np.uint8)
    ref[1:6, 1:6, 1:6] = 1
    ref[9:13, 9:13, 9:13] = 4
    pred = ref.copy()
    pred[9:13, 9:13, 9:13] = 0
    pred[9:13, 9:13, 10:14] = 4  # spleen shifted by one slice
    pred[1:3, 10:12, 1:3] = 2  # right kidney predicted but absent from the reference: skipped
    res = evaluate_label_volumes(pred, ref, (1.0, 1.0, 2.0))
    assert set(res) == {"liver", "spleen", "mean"}
    assert res["liver"]["score"] == 100.0
    spleen = compute_chaos_metrics(pred == 4, ref == 4, (1.0, 1.0, 2.0))
    assert res["spleen"] == spleen
    assert spleen["dice"] == pytest.approx(2 * 48 / 128)
    assert res["mean"]["score"] == pytest.approx((100.0 + spleen["score"]) / 2)
    assert res["mean"]["dice"] == pytest.approx((1.0 + spleen["dice"]) / 2)
    assert evaluate_label_volumes(pred, np.zeros_like(ref), (1, 1, 1)) == {}
    with pytest.raises(InvalidInputError, match="shape mismatch"):
        evaluate_label_volumes(pred, ref[:-1], (1, 1, 1))
