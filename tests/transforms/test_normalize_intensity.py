from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from scse_monai.errors import InvalidInputError
from scse_monai.transforms import (
    CheckImage,
    CheckImaged,
    ModalityNormalizeIntensity,
    ModalityNormalizeIntensityd,
    infer_modality,
)


def _ct() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    img = torch.full((1, 16, 16, 4), -1000.0)  # air
    img[:, 4:12, 4:12] = 60 + 20 * torch.randn(1, 8, 8, 4, generator=g)  # soft tissue
    img[:, 7:9, 7:9] = 700.0  # bone
    return img


def _mr() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 400 * torch.rand(1, 16, 16, 4, generator=g) ** 2


def test_ct_window_matches_formula() -> None:
    img = _ct()
    out = ModalityNormalizeIntensity(ct_window=(-175, 250))(img, "ct")
    expected = ((img + 175) / 425).clamp(0, 1)
    torch.testing.assert_close(torch.as_tensor(out), expected)


def test_mr_percentiles_match_numpy() -> None:
    img = _mr()
    out = torch.as_tensor(ModalityNormalizeIntensity(mr_percentiles=(1, 99))(img, "t2spir"))
    lo, hi = np.percentile(img.numpy(), [1, 99])
    expected = np.clip((img.numpy() - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_modality_inferred_from_intensities() -> None:
    assert infer_modality(_ct()) == "ct"
    assert infer_modality(_mr()) == "mr"
    t = ModalityNormalizeIntensity()
    torch.testing.assert_close(torch.as_tensor(t(_ct())), torch.as_tensor(t(_ct(), "ct")))
    torch.testing.assert_close(torch.as_tensor(t(_mr(), "auto")), torch.as_tensor(t(_mr(), "mr")))


def test_dictionary_reads_modality_key() -> None:
    img = _mr()
    d = ModalityNormalizeIntensityd("image")({"image": img, "modality": "ct"})
    # forced CT on an MR image: every value is above 250 HU... or clipped, i.e. a CT window was applied
    torch.testing.assert_close(torch.as_tensor(d["image"]), ((img + 175) / 425).clamp(0, 1))


def test_nan_is_reported_with_file_name() -> None:
    img = MetaTensor(_ct(), meta={"filename_or_obj": "/data/case_7.nii.gz"})
    img[0, 0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match=r"case_7\.nii\.gz.*1 NaN/Inf voxel"):
        ModalityNormalizeIntensity()(img)


def test_unknown_modality() -> None:
    with pytest.raises(ValueError, match="unknown modality 'pet'"):
        ModalityNormalizeIntensity()(_ct(), "pet")


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 8, 8, 4), "expected 1 channel\\(s\\), got 2"), ((1, 8, 8), "3 spatial dimensions, got shape")],
)
def test_check_image_rejects_wrong_shapes(shape, message) -> None:
    img = MetaTensor(torch.zeros(shape), meta={"filename_or_obj": "scan.nii.gz"})
    with pytest.raises(InvalidInputError, match=f"scan.nii.gz: .*{message}"):
        CheckImage(spatial_dims=3, channels=1)(img)
    with pytest.raises(InvalidInputError):
        CheckImaged("image")({"image": img})


def test_check_image_passes_good_input_through() -> None:
    img = torch.zeros(1, 4, 4, 4)
    assert CheckImage()(img) is img
