from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ImplicitVRLittleEndian

from scse_monai.apps.chaos.io import natural_key
from scse_monai.apps.chaos.phantom import make_phantom, phantom_grids, simulate_case
from scse_monai.cli import main

SIZE = 64


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("ph"), n_ct=2, n_mr=2, seed=1, size=SIZE, test_cases=1)


def files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern), key=natural_key)


def digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*.*")}


def test_layout_and_names(root):
    ct = root / "Train_Sets" / "CT" / "1"
    dcm, png = files(ct / "DICOM_anon", "*.dcm"), files(ct / "Ground", "*.png")
    assert len(dcm) == len(png) == 40
    assert all(re.fullmatch(r"i\d{4},0000b\.dcm", p.name) for p in dcm) and dcm[0].name == "i0000,0000b.dcm"
    assert [p.name for p in png[:2]] == ["liver_GT_000.png", "liver_GT_001.png"]
    assert Image.open(png[0]).mode == "1"
    mr = root / "Train_Sets" / "MR" / "1"
    for sub in ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/DICOM_anon/OutPhase", "T2SPIR/DICOM_anon"):
        names = files(mr / sub, "*.dcm")
        assert len(names) == 26 and all(re.fullmatch(r"IMG-\d{4}-\d{5}\.dcm", p.name) for p in names)
    for sub in ("T1DUAL/Ground", "T2SPIR/Ground"):
        pngs = files(mr / sub, "*.png")
        assert len(pngs) == 26 and Image.open(pngs[0]).mode == "L"
    assert [p.stem for p in files(mr / "T2SPIR/Ground", "*.png")] == [
        p.stem for p in files(mr / "T2SPIR/DICOM_anon", "*.dcm")
    ]
    assert (root / "Train_Sets" / "MR" / "2").is_dir()
    test_ct = root / "Test_Sets" / "CT" / "3"
    assert (test_ct / "DICOM_anon").is_dir() and not (test_ct / "Ground").exists()
    assert not list((root / "Test_Sets").rglob("*.png"))


def test_ct_dicom_tags(root):
    dcm = files(root / "Train_Sets" / "CT" / "1" / "DICOM_anon", "*.dcm")
    ds = [pydicom.dcmread(p) for p in dcm]
    assert ds[0].file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds[0].Modality == "CT" and ds[0].PixelRepresentation == 0 and ds[0].BitsAllocated == 16
    assert float(ds[0].RescaleSlope) == 1 and float(ds[0].RescaleIntercept) == -1000
    assert list(map(float, ds[0].ImageOrientationPatient)) == [1, 0, 0, 0, 1, 0]
    z = np.array([float(d.ImagePositionPatient[2]) for d in ds])
    steps = np.diff(z)
    assert np.allclose(steps, steps[0]) and steps[0] < 0  # z decreasing in name order, as the real sample
    assert float(ds[0].SliceThickness) != pytest.approx(abs(steps[0]))  # the trap
    assert [int(d.InstanceNumber) for d in ds] == list(range(1, 41))
    assert np.all(np.diff([float(d.SliceLocation) for d in ds]) > 0)
    assert len({d.SeriesInstanceUID for d in ds}) == 1 and len({d.SOPInstanceUID for d in ds}) == 40
    assert (ds[0].Rows, ds[0].Columns) == (SIZE, SIZE)


def test_mr_echo_times(root):
    mr = root / "Train_Sets" / "MR" / "1"
    te = {
        sub: float(pydicom.dcmread(files(mr / sub, "*.dcm")[0], stop_before_pixels=True).EchoTime)
        for sub in ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/DICOM_anon/OutPhase", "T2SPIR/DICOM_anon")
    }
    assert te["T1DUAL/DICOM_anon/InPhase"] > te["T1DUAL/DICOM_anon/OutPhase"]
    assert te["T2SPIR/DICOM_anon"] > 50


def test_mr_ground_has_off_nominal_grey_in_range(root):
    values = np.concatenate(
        [np.asarray(Image.open(p)).ravel() for p in files(root / "Train_Sets/MR/1/T2SPIR/Ground", "*.png")]
    )
    present = set(np.unique(values).tolist())
    assert {0, 63, 126, 189, 252} <= present
    off = present - {0, 63, 126, 189, 252}
    assert off, "expected a few off-nominal grey values"
    ranges = [(55, 70), (110, 135), (175, 200), (240, 255)]
    assert all(any(lo < v <= hi for lo, hi in ranges) for v in off)


def test_reproducible(root, tmp_path):
    again = make_phantom(tmp_path / "a", n_ct=2, n_mr=2, seed=1, size=SIZE, test_cases=1)
    assert digest(again) == digest(root)
    other = make_phantom(tmp_path / "b", n_ct=1, n_mr=0, seed=2, size=SIZE)
    assert digest(other)["Train_Sets/CT/1/DICOM_anon/i0010,0000b.dcm"] != digest(root)[
        "Train_Sets/CT/1/DICOM_anon/i0010,0000b.dcm"
    ]


def centroid_column(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[0].mean())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_anatomy_plausible(index):
    ct = simulate_case("ct", index, seed=5, size=SIZE).series["ct"]
    organs, hu = ct.organs, ct.stored.astype(np.float32) - 1000
    # axis 0 = column, increasing towards patient LEFT (IOP x = +1): liver right (low), spleen left (high)
    assert centroid_column(organs == 1) < ct.stored.shape[0] / 2 < centroid_column(organs == 4)
    assert centroid_column(organs == 2) < ct.stored.shape[0] / 2 < centroid_column(organs == 3)
    np.testing.assert_array_equal(ct.labels, (organs == 1).astype(np.uint8))  # CT Ground: liver only
    liver, spleen, kidney = hu[organs == 1].mean(), hu[organs == 4].mean(), hu[(organs == 2) | (organs == 3)].mean()
    assert 60 < liver < 160 and abs(liver - spleen) < 30 and kidney > liver + 20
    assert hu[organs == 1].std() > 10  # noise and texture
    assert hu.min() <= -950 and hu.max() > 400  # air outside, bone
    per_slice = (organs > 0).reshape(-1, organs.shape[2]).any(0)
    assert not per_slice.all() and per_slice.any()  # some slices without organs
    liver_z = np.nonzero((organs == 1).any((0, 1)))[0]
    kidney_z = np.nonzero(((organs == 2) | (organs == 3)).any((0, 1)))[0]
    # name order runs superior -> inferior (z decreasing): the liver dome comes before the kidneys
    assert liver_z.min() < kidney_z.min()


def test_shape_variation_and_mr_contrast():
    volumes = [(simulate_case("ct", i, seed=0, size=SIZE).series["ct"].labels == 1).sum() for i in range(3)]
    assert max(volumes) > 1.1 * min(volumes)
    mr = simulate_case("mr", 0, seed=0)
    t2 = mr.series["t2spir"]
    sig = t2.stored.astype(float)
    assert sig[t2.labels == 4].mean() > sig[t2.labels == 1].mean()  # T2: spleen brighter than liver
    assert sig[t2.labels == 2].mean() > sig[t2.labels == 1].mean()
    assert mr.series["t1dual_in"].stored.shape == (96, 96, 26)
    assert not np.array_equal(mr.series["t1dual_in"].stored, mr.series["t1dual_out"].stored)
    assert mr.series["t1dual_in"].labels is mr.series["t1dual_out"].labels


def test_size_option_grid():
    g = phantom_grids("ct", 0, seed=0, size=512)[0]["ct"]
    assert (g.columns, g.rows, g.slices, g.spacing, g.step) == (512, 512, 100, 0.7421875, -2.0)  # real CT size
    g = phantom_grids("ct", 0, seed=0, size=256)[0]["ct"]
    assert (g.columns, g.slices, g.step) == (256, 80, -2.5)
    default = simulate_case("ct", 0, seed=0, size=None).series["ct"]
    assert default.stored.shape == (128, 128, 40) and default.grid.spacing == 2.96875
    assert phantom_grids("mr", 0, seed=0, size=128)[0]["t2spir"].columns == 64


def test_cli(tmp_path, capsys):
    assert main(["phantom", str(tmp_path), "--ct", "1", "--mr", "0", "--size", "32"]) == 0
    assert len(list((tmp_path / "Train_Sets" / "CT" / "1" / "DICOM_anon").glob("*.dcm"))) == 40
    assert main(["phantom", str(tmp_path), "--size", "8"]) == 2
