from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scse_monai.apps.chaos.convert import convert_chaos

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "chaos_ct_sample"


def test_real_ct_sample(tmp_path):
    if not (SAMPLE / "DICOM_anon").is_dir() or not (SAMPLE / "Ground").is_dir():
        pytest.skip(f"real CHAOS CT sample not available at {SAMPLE}")
    case = tmp_path / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "1"
    case.mkdir(parents=True)
    (case / "DICOM_anon").symlink_to(SAMPLE.resolve() / "DICOM_anon", target_is_directory=True)
    (case / "Ground").symlink_to(SAMPLE.resolve() / "Ground", target_is_directory=True)
    report = convert_chaos(tmp_path, tmp_path / "out", progress=False)
    assert report.converted == ["ct_1"] and report.ok
    img = nib.load(tmp_path / "out" / "imagesTr" / "ct_1.nii.gz")
    lab = nib.load(tmp_path / "out" / "labelsTr" / "ct_1.nii.gz")
    assert img.shape == (512, 512, 78)
    assert img.header.get_zooms() == pytest.approx((0.7265625, 0.7265625, 2.0))
    np.testing.assert_array_equal(img.affine, lab.affine)
    assert img.affine[2, 2] == -2.0 and img.affine[2, 3] == 1690.5  # z decreases in name order, first IPP origin
    hu = img.get_fdata(dtype=np.float32)
    liver = np.asarray(lab.dataobj) == 1
    assert int(liver.sum()) == 1342595  # CHAOS.md section 8
    assert 120 < hu[liver].mean() < 160 and hu[liver].std() < 60
    # the check discriminates: the reversed pairing of position-sorting readers is far off (~36 +- 248 HU)
    reversed_liver = liver[:, :, ::-1]
    assert hu[reversed_liver].mean() < 80 and hu[reversed_liver].std() > 150
