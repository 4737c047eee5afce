"""Corpus, slice consistency: DICOM series that are internally inconsistent in ways real archives are.

Each builder breaks one slice of a valid tiny CT (or MR) case; the converter must fail that case with one line naming
the slice (the good case beside it still converts), and the bundle's input listing must refuse the same folder.
Series that are irregular but usable (uneven spacing) convert with the measured deviation reported.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from scse_monai.data import list_inference_inputs
from scse_monai.errors import InvalidInputError

from .corpus import record, run_case
from .reliability_data import make_case_tree, read_dataset, write_dicom

CATEGORY = "slice consistency"


def _edit(path: Path, edit: Callable) -> None:
    ds = read_dataset(path)
    edit(ds)
    write_dicom(path, ds)


def _set(**tags) -> Callable:
    def edit(ds):
        for k, v in tags.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)

    return edit


def _series_uid(dicom_dir: Path, odd: str) -> None:
    uid = generate_uid()
    for p in sorted(dicom_dir.glob("*.dcm")):
        _edit(p, _set(SeriesInstanceUID=generate_uid() if p.name == odd else uid))


def _pixels(rows: int, cols: int) -> Callable:
    return _set(Rows=rows, Columns=cols)


# name -> (edit applied to the case's DICOM folder, the file the error must name, a phrase of the message)
BREAKS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "slope_missing_intercept_present": (lambda d: _edit(d / "s2.dcm", _set(RescaleSlope=None)), "s2.dcm",
                                        "RescaleIntercept without RescaleSlope"),
    "intercept_missing_slope_present": (lambda d: _edit(d / "s3.dcm", _set(RescaleIntercept=None)), "s3.dcm",
                                        "RescaleSlope without RescaleIntercept"),
    "slope_zero": (lambda d: _edit(d / "s2.dcm", _set(RescaleSlope=0)), "s2.dcm", "RescaleSlope 0"),
    "rescale_tags_on_some_slices_only": (lambda d: _edit(d / "s4.dcm", _set(RescaleSlope=None, RescaleIntercept=None)),
                                         "s4.dcm", "rescale tags missing"),
    "orientation_not_orthogonal_cross_length_1": (
        lambda d: [_edit(p, _set(ImageOrientationPatient=[1, 0, 0, 1, 1, 0])) for p in d.glob("*.dcm")], "s1.dcm",
        "orthogonal unit"),
    "orientation_not_unit": (
        lambda d: [_edit(p, _set(ImageOrientationPatient=[2, 0, 0, 0, 2, 0])) for p in d.glob("*.dcm")], "s1.dcm",
        "orthogonal unit"),
    "orientation_differs_on_one_slice": (
        lambda d: _edit(d / "s3.dcm", _set(ImageOrientationPatient=[0, 1, 0, 1, 0, 0])), "s3.dcm",
        "ImageOrientationPatient differs"),
    "two_series_uids": (lambda d: _series_uid(d, "s3.dcm"), "s3.dcm", "expected one series per folder"),
    "one_slice_other_modality": (lambda d: _edit(d / "s2.dcm", _set(Modality="MR")), "s2.dcm",
                                 "expected one modality per folder"),
    "duplicate_position_not_neighbours": (
        lambda d: _edit(d / "s3.dcm", _set(ImagePositionPatient=[-10.0, -12.0, 0.0])), "s3.dcm",
        "one position per slice"),
    "declared_65535x65535_with_240_bytes": (lambda d: [_edit(p, _pixels(65535, 65535)) for p in d.glob("*.dcm")],
                                            "s1.dcm", "pixel data holds 240 bytes"),
    "rows_columns_swapped_one_slice": (lambda d: _edit(d / "s2.dcm", _pixels(10, 12)), "s2.dcm", "slice size 10x12"),
    "rgb_samples_per_pixel_3": (lambda d: _edit(d / "s2.dcm", _set(SamplesPerPixel=3)), "s2.dcm",
                                "one greyscale frame"),
    "multi_frame_2": (lambda d: _edit(d / "s2.dcm", _set(NumberOfFrames=2)), "s2.dcm", "one greyscale frame"),
    "negative_pixel_spacing": (lambda d: [_edit(p, _set(PixelSpacing=[-2.0, 1.5])) for p in d.glob("*.dcm")],
                               "s1.dcm", "positive spacings"),
    "pixel_spacing_differs_one_slice": (lambda d: _edit(d / "s4.dcm", _set(PixelSpacing=[2.0, 1.0])), "s4.dcm",
                                        "PixelSpacing differs"),
    "bits_allocated_32_declared_16_stored": (lambda d: _edit(d / "s2.dcm", _set(BitsAllocated=32)), "s2.dcm",
                                             "at 32 bits"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_converter_refuses_inconsistent_series(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "chaos"
    dicom_dir, _ = make_case_tree(root, n=5)
    make_case_tree(root, case_id="2", seed=1)
    edit, culprit, phrase = BREAKS[name]
    edit(dicom_dir)
    out = tmp_path / "out"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # 4 GiB of address space: a reader that believed the 65535x65535 header would need 8 GiB for one slice
    resource.setrlimit(resource.RLIMIT_AS, (min(4 << 30, hard) if hard > 0 else 4 << 30, hard))
    try:
        line = run_case(CATEGORY, ["convert", root, out, "--quiet", "--modality", "ct"], capsys, names=[culprit],
                        protect=[root], sandbox=tmp_path, allowed=[out], line_start="FAILED ct_1:")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert phrase in line
    entries = json.loads((out / "datalist.json").read_text())["training"]
    assert [e["case"] for e in entries] == ["ct_2"]
    assert not (out / "imagesTr" / "ct_1.nii.gz").exists()


@pytest.mark.parametrize("name", ["two_series_uids", "one_slice_other_modality", "declared_65535x65535_with_240_bytes",
                                  "duplicate_position_not_neighbours", "rows_columns_swapped_one_slice"])
def test_inference_listing_refuses_inconsistent_series(name: str, tmp_path: Path) -> None:
    """The bundle's inference inputs go through the same validator (library level; the bundle runs it)."""
    dicom_dir, _ = make_case_tree(tmp_path / "chaos", n=5, ground=False)
    edit, culprit, phrase = BREAKS[name]
    edit(dicom_dir)
    try:
        list_inference_inputs(dicom_dir)
    except InvalidInputError as e:
        assert culprit in str(e) and phrase in str(e)
        record(CATEGORY, "refused clearly")
        return
    except Exception as e:  # an escape
        record(CATEGORY, "escaped")
        pytest.fail(f"{type(e).__name__} escaped: {e}")
    record(CATEGORY, "silent wrong")
    pytest.fail("inconsistent series accepted for inference")


def test_uneven_spacing_converts_with_measured_deviation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A missing middle slice (CHAOS-like irregularity): converted, the deviation in mm reported and recorded."""
    root = tmp_path / "chaos"
    dicom_dir, ground_dir = make_case_tree(root, n=5)
    (dicom_dir / "s3.dcm").unlink()
    (ground_dir / "g3.png").unlink()
    out = tmp_path / "out"

    def check() -> bool:
        entry = json.loads((out / "datalist.json").read_text())["training"][0]
        # positions 0, 5, 15, 20 mm: the first/last affine puts slice 2 at 13.33 mm, 1.67 mm from 15
        return abs(entry["position_deviation_mm"] - 5 / 3) < 1e-3

    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, protect=[root], check=check, expect="correct result")
    meta = json.loads((out / "meta" / "train_ct_1.json").read_text())
    assert any("uneven slice spacing" in w and "1.67 mm" in w for w in meta["warnings"])


def test_unicode_digits_in_names_do_not_abort_discovery(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """'²'.isdigit() is True but int('²') fails: such names sort as text and a case folder '1²' is skipped."""
    root = tmp_path / "chaos"
    dicom_dir, ground_dir = make_case_tree(root, n=3)
    for k in (1, 2, 3):  # s1.dcm -> s1²a.dcm keeps the natural order
        (dicom_dir / f"s{k}.dcm").rename(dicom_dir / f"s{k}²a.dcm")
        (ground_dir / f"g{k}.png").rename(ground_dir / f"g{k}²a.png")
    make_case_tree(root, case_id="2²", seed=1)
    out = tmp_path / "out"

    def check() -> bool:
        entries = json.loads((out / "datalist.json").read_text())["training"]
        return [e["case"] for e in entries] == ["ct_1"]

    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, protect=[root], check=check,
             expect="correct result")
    assert np.asarray(__import__("nibabel").load(out / "imagesTr" / "ct_1.nii.gz").dataobj).shape[2] == 3
