from __future__ import annotations

import numpy as np
import pytest
from parameterized import parameterized

from scse_monai.apps.chaos.labels import (
    GREY_LEVELS,
    GREY_RANGES,
    LABELS,
    NUM_CLASSES,
    ORGANS,
    labels_from_ct_ground,
    labels_from_mr_grey,
    labels_to_grey,
)
from scse_monai.errors import InvalidInputError

# (grey value, expected label) at and around every boundary of the organisers' ranges (CHAOS.md section 5).
BOUNDARY_CASES = [
    [0, 0], [32, 0],  # background, "torsal" -> background
    [55, 0], [56, 1], [63, 1], [70, 1], [71, 0],
    [110, 0], [111, 2], [126, 2], [135, 2], [136, 0],
    [175, 0], [176, 3], [189, 3], [200, 3], [201, 0],
    [240, 0], [241, 4], [252, 4], [255, 4],
]  # fmt: skip


@parameterized.expand(BOUNDARY_CASES)
def test_mr_grey_ranges_are_half_open(grey, expected):
    labels, unmapped = labels_from_mr_grey(np.array([[grey]], dtype=np.uint8))
    assert labels.dtype == np.uint8
    assert labels[0, 0] == expected
    assert unmapped == (1 if grey and not expected else 0)


def test_mr_unmapped_count_and_shape():
    arr = np.array([[0, 63, 32], [100, 252, 5]], dtype=np.uint8)
    labels, unmapped = labels_from_mr_grey(arr)
    np.testing.assert_array_equal(labels, [[0, 1, 0], [0, 4, 0]])
    assert unmapped == 3  # 32, 100, 5


def test_ct_ground_values():
    np.testing.assert_array_equal(labels_from_ct_ground(np.array([0, 1, 0, 1])), [0, 1, 0, 1])
    np.testing.assert_array_equal(labels_from_ct_ground(np.array([0, 255])), [0, 1])
    assert labels_from_ct_ground(np.array([True, False])).dtype == np.uint8


def test_ct_ground_rejects_grey_levels():
    with pytest.raises(InvalidInputError, match=r"case_7.*values 63.*expected a liver mask"):
        labels_from_ct_ground(np.array([0, 63, 126]), case="case_7")


def test_grey_round_trip_and_levels():
    labels = np.arange(5, dtype=np.uint8).reshape(5, 1)
    grey = labels_to_grey(labels)
    np.testing.assert_array_equal(grey[:, 0], [0, 63, 126, 189, 252])
    back, unmapped = labels_from_mr_grey(grey)
    np.testing.assert_array_equal(back, labels)
    assert unmapped == 0
    assert set(ORGANS) == set(GREY_LEVELS) == {1, 2, 3, 4}


def test_labels_to_grey_rejects_unknown_label():
    with pytest.raises(InvalidInputError, match="expected 0..4"):
        labels_to_grey(np.array([0, 5]))


def test_one_label_space_and_what_derives_from_it():
    assert LABELS["background"] == 0 and sorted(LABELS.values()) == list(range(NUM_CLASSES))
    assert ORGANS == {v: k for k, v in LABELS.items() if v}
    assert list(ORGANS) == sorted(ORGANS)  # label order
    assert set(GREY_RANGES) == set(GREY_LEVELS) == set(ORGANS)
