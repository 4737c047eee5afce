from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian, generate_uid

from scse_monai.apps.chaos.io import list_slices, natural_key, read_dicom_series, read_png_stack
from scse_monai.apps.chaos.phantom import save_dicom_file
from scse_monai.errors import InvalidInputError


def write_slice(path: Path, pixels: np.ndarray, ipp, ps=(0.5, 0.75), thickness=3.2, echo=None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing, ds.SliceThickness = list(ps), thickness
    ds.ImagePositionPatient, ds.ImageOrientationPatient = list(ipp), [1, 0, 0, 0, 1, 0]
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1000
    if echo is not None:
        ds.EchoTime = echo
    ds.PixelData = pixels.astype("<u2").tobytes()
    save_dicom_file(ds, path)


def make_series(folder: Path, names, z_positions, shape=(3, 4)):
    folder.mkdir(parents=True, exist_ok=True)
    pixels = []
    for i, (name, z) in enumerate(zip(names, z_positions, strict=True)):
        px = (np.arange(shape[0] * shape[1]).reshape(shape) + 100 * i).astype(np.uint16)
        write_slice(folder / name, px, (-10.0, -20.0, z))
        pixels.append(px)
    return pixels


def test_natural_key_orders_numbers_numerically():
    names = ["img10.dcm", "img2.dcm", "IMG1.dcm", "i0001,0000b.dcm", "i0000,0000b.dcm"]
    assert sorted(names, key=natural_key) == ["i0000,0000b.dcm", "i0001,0000b.dcm", "IMG1.dcm", "img2.dcm", "img10.dcm"]
    assert natural_key("/a/b/x2.png") == natural_key("x2.png")


def test_list_slices_skips_hidden_and_sorts(tmp_path):
    for name in ["s10.dcm", "s2.dcm", "._s1.dcm", "s1.DCM", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.dcm").mkdir()
    assert [p.name for p in list_slices(tmp_path)] == ["s1.DCM", "s2.dcm", "s10.dcm"]


def test_list_slices_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="folder not found"):
        list_slices(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match=r"no \.png files found"):
        list_slices(tmp_path, ".png")


def test_read_series_name_order_geometry_and_hu(tmp_path):
    # natural order s1, s2, s10 with z decreasing (like the real CT sample), non-square pixels, thickness != step
    pixels = make_series(tmp_path, ["s1.dcm", "s2.dcm", "s10.dcm"], [100.0, 98.0, 96.0])
    s = read_dicom_series(tmp_path)
    assert [p.name for p in s.files] == ["s1.dcm", "s2.dcm", "s10.dcm"]
    assert s.array.shape == (4, 3, 3) and s.array.dtype == np.float32
    for k, px in enumerate(pixels):
        np.testing.assert_array_equal(s.array[:, :, k], px.T.astype(np.float32) - 1000)
    expected = np.array([[-0.75, 0, 0, 10.0], [0, -0.5, 0, 20.0], [0, 0, -2.0, 100.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(s.affine, expected)
    assert s.spacing == pytest.approx((0.75, 0.5, 2.0))
    assert s.pixel_spacing == (0.5, 0.75)
    assert s.name_order_matches_position is False and s.positions_monotonic
    assert s.modality == "CT"
    headers = read_dicom_series(tmp_path, with_pixels=False)
    assert headers.array is None and headers.shape == (4, 3, 3)
    np.testing.assert_array_equal(headers.affine, s.affine)


def test_read_series_ascending_positions_match(tmp_path):
    make_series(tmp_path, ["a1.dcm", "a2.dcm"], [0.0, 5.0])
    s = read_dicom_series(tmp_path, with_pixels=False)
    assert s.name_order_matches_position is True
    assert s.spacing[2] == pytest.approx(5.0)


def test_read_series_truncated_dicom(tmp_path):
    shutil.copy(get_testdata_file("MR_truncated.dcm"), tmp_path / "MR_truncated.dcm")
    msg = r"MR_truncated\.dcm: pixel data holds 8130 bytes but Rows x Columns 64x64 at 16 bits needs 8192"
    with pytest.raises(InvalidInputError, match=msg):
        read_dicom_series(tmp_path)


def test_read_series_not_dicom(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"hello")
    with pytest.raises(InvalidInputError, match=r"x\.dcm: not a DICOM file"):
        read_dicom_series(tmp_path)


def test_read_series_mixed_sizes(tmp_path):
    make_series(tmp_path, ["a1.dcm"], [0.0], shape=(3, 4))
    make_series(tmp_path / "tmp", ["a2.dcm"], [1.0], shape=(5, 4))
    shutil.move(tmp_path / "tmp" / "a2.dcm", tmp_path / "a2.dcm")
    with pytest.raises(InvalidInputError, match=r"a2\.dcm: slice size 5x4 .*a1\.dcm \(3x4\)"):
        read_dicom_series(tmp_path, with_pixels=False)


def test_read_png_stack_modes_and_orientation(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 2, size=(3, 5)).astype(bool) for _ in range(2)]
    for k, m in enumerate(masks):
        Image.fromarray(m).save(tmp_path / f"liver_GT_{k:03d}.png")
    assert Image.open(tmp_path / "liver_GT_000.png").mode == "1"
    stack = read_png_stack(tmp_path)
    assert stack.shape == (5, 3, 2) and stack.dtype == np.uint8
    for k, m in enumerate(masks):
        np.testing.assert_array_equal(stack[:, :, k], m.T.astype(np.uint8))
    grey = tmp_path / "grey"
    grey.mkdir()
    arr = np.array([[0, 63, 126], [189, 252, 60]], dtype=np.uint8)
    Image.fromarray(arr, mode="L").save(grey / "IMG-0002-00001.png")
    np.testing.assert_array_equal(read_png_stack(grey)[:, :, 0], arr.T)


def test_read_png_stack_errors(tmp_path):
    Image.fromarray(np.zeros((3, 3, 3), np.uint8), mode="RGB").save(tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match=r"a\.png: PNG mode 'RGB'"):
        read_png_stack(tmp_path)
    other = tmp_path / "sizes"
    other.mkdir()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(other / "m1.png")
    Image.fromarray(np.zeros((4, 3), np.uint8)).save(other / "m2.png")
    with pytest.raises(InvalidInputError, match=r"m2\.png: mask size 4x3"):
        read_png_stack(other)
    (other / "m3.png").write_bytes(b"not a png")
    with pytest.raises(InvalidInputError):
        read_png_stack(other)


def test_pydicom_reads_what_we_write(tmp_path):
    make_series(tmp_path, ["a.dcm"], [0.0])
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_dicom_affine_chaos_convention_is_the_official_matrix():
    """One geometry function: its "chaos" convention equals the metrics' copy of the organisers' mapping."""
    from scse_monai.apps.chaos.io import dicom_affine
    from scse_monai.metrics.chaos import chaos_dicom_geometry

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    iop = np.concatenate([q[:, 0], q[:, 1]])
    ps, first, last = (0.7, 0.9), rng.normal(size=3) * 50, rng.normal(size=3) * 50
    for n in (1, 2, 78):
        np.testing.assert_allclose(dicom_affine(iop, ps, first, last, n, convention="chaos"),
                                   chaos_dicom_geometry(iop, ps, first, last, n))
    ras = dicom_affine(iop, ps, first, last, 78)
    # DICOM convention: column index along IOP[0:3] by PixelSpacing[1]; LPS -> RAS flips x and y
    np.testing.assert_allclose(ras[:3, 0], np.array([-1, -1, 1]) * iop[:3] * ps[1])
    np.testing.assert_allclose(ras[:3, 1], np.array([-1, -1, 1]) * iop[3:] * ps[0])


def test_natural_key_with_unicode_digits():
    # '²'.isdigit() is True but int('²') raises: such characters sort as text
    assert sorted(["a²2", "a10", "a2"], key=natural_key) == ["a2", "a10", "a²2"]
