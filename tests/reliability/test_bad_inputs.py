"""Bad-input corpus: every malformed input gives one InvalidInputError / one CLI line naming the file or case.

The corpus is generated here (from a tiny valid case that each builder breaks in one way) plus real malformed files
from pydicom's own test data. Each case is fed to the library (the documented error type must come out, naming the
file) and, where there is one, to the command line (non-zero exit, one error line, no traceback), and no output
that looks complete may be left for the failed case.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from scse_monai.apps.chaos.convert import case_outputs, convert_case
from scse_monai.apps.chaos.discover import discover_cases
from scse_monai.apps.chaos.export import export_submission
from scse_monai.apps.chaos.io import list_slices, read_dicom_series, read_png_stack
from scse_monai.apps.chaos.scoring import evaluate_case, evaluate_datalist
from scse_monai.cli import main
from scse_monai.data import inverse_frequency_weights, list_inference_inputs
from scse_monai.data.datalist import load_datalist
from scse_monai.errors import InvalidInputError

from .reliability_data import (
    COLS,
    ROWS,
    STATS,
    dicom_dataset,
    first_exception_of,
    inference_workflow,
    make_case_tree,
    read_dataset,
    write_dicom,
    write_png,
)

# ---------------------------------------------------------------------------------------------------------------
# harness


def expect_invalid(fn: Callable[[], object], *names: str) -> InvalidInputError:
    """Call ``fn``; it must raise InvalidInputError whose one-line message contains every one of ``names``."""
    STATS["bad inputs tried (library)"] += 1
    try:
        fn()
    except InvalidInputError as e:
        msg = str(e)
        assert "\n" not in msg.strip(), f"multi-line message: {msg!r}"
        for name in names:
            assert name in msg, f"{name!r} not named in: {msg}"
        return e
    except Exception as e:  # an escape: exactly what the corpus is looking for
        STATS["bad inputs escaped (library)"] += 1
        pytest.fail(f"uncaught {type(e).__name__} escaped instead of InvalidInputError: {e}")
    STATS["bad inputs accepted silently (library)"] += 1
    pytest.fail("bad input accepted without an error")


def expect_cli_error(argv: list[str], capsys: pytest.CaptureFixture, *names: str, line_start: str = "") -> str:
    """Run the CLI in-process: non-zero exit, exactly one error line naming ``names``, no traceback."""
    STATS["bad inputs tried (CLI)"] += 1
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    except Exception as e:
        STATS["bad inputs escaped (CLI)"] += 1
        pytest.fail(f"uncaught {type(e).__name__} escaped the CLI: {e}")
    err = capsys.readouterr().err
    assert code not in (0, None), f"exit status {code} for bad input"
    assert "Traceback" not in err
    start = line_start or f"scse-monai {argv[0]}: error:"
    lines = [line for line in err.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"expected one error line starting {start!r}, got:\n{err}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


def assert_no_outputs(out: Path, case_id: str) -> None:
    """No file of the failed case (not even a temporary one) and no datalist entry for it."""
    if not out.exists():
        return
    leftovers = [p for p in out.rglob("*") if p.is_file() and case_id in p.name]
    assert not leftovers, f"outputs left for failed case {case_id}: {leftovers}"
    datalist = out / "datalist.json"
    if datalist.exists():
        data = json.loads(datalist.read_text())
        cases = [e.get("case") for s in ("training", "test") for e in data.get(s, [])]
        assert case_id not in cases


# ---------------------------------------------------------------------------------------------------------------
# converter corpus: each builder breaks a valid CT (or MR T2SPIR) case; returns the name the error must carry


def _truncate(path: Path, fraction: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _edit_slice(path: Path, edit: Callable) -> None:
    ds = read_dataset(path)
    edit(ds)
    write_dicom(path, ds)


def _pydicom_file(name: str) -> Callable[[Path], str]:
    def build(root: Path) -> str:
        dicom_dir, _ = make_case_tree(root)
        shutil.copyfile(get_testdata_file(name), dicom_dir / "s2.dcm")
        return "s2.dcm"

    return build


def _b_truncated(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _truncate(dicom_dir / "s3.dcm")
    return "s3.dcm"


def _b_truncated_in_pixel_data(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _truncate(dicom_dir / "s2.dcm", 0.9)
    return "s2.dcm"


def _b_truncated_header(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _truncate(dicom_dir / "s1.dcm", 0.05)
    return "s1.dcm"


def _b_not_dicom(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    (dicom_dir / "s2.dcm").write_text("this is a text file with a .dcm name\n")
    return "s2.dcm"


def _b_empty_dcm(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    (dicom_dir / "s4.dcm").write_bytes(b"")
    return "s4.dcm"


def _b_no_pixel_data(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _edit_slice(dicom_dir / "s3.dcm", lambda ds: delattr(ds, "PixelData"))
    return "s3.dcm"


def _b_short_pixel_data(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)

    def edit(ds):
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]

    _edit_slice(dicom_dir / "s2.dcm", edit)
    return "s2.dcm"


def _b_mixed_size(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    ds = dicom_dataset(np.zeros((ROWS + 2, COLS), np.uint16), (-10.0, -12.0, 10.0))
    write_dicom(dicom_dir / "s3.dcm", ds)
    return "s3.dcm"


def _b_duplicate_ipp(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _edit_slice(dicom_dir / "s3.dcm", lambda ds: setattr(ds, "ImagePositionPatient", [-10.0, -12.0, 5.0]))
    return "s3.dcm"


def _b_missing_spacing_first(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _edit_slice(dicom_dir / "s1.dcm", lambda ds: delattr(ds, "PixelSpacing"))
    return "s1.dcm"


def _b_missing_spacing_later(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _edit_slice(dicom_dir / "s3.dcm", lambda ds: delattr(ds, "PixelSpacing"))
    return "s3.dcm"


def _b_zero_spacing(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    for k in range(1, 5):
        _edit_slice(dicom_dir / f"s{k}.dcm", lambda ds: setattr(ds, "PixelSpacing", [0.0, 1.5]))
    return "s1.dcm"


def _b_missing_ipp(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    _edit_slice(dicom_dir / "s2.dcm", lambda ds: delattr(ds, "ImagePositionPatient"))
    return "s2.dcm"


def _b_bad_iop(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    for k in range(1, 5):
        _edit_slice(dicom_dir / f"s{k}.dcm", lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]))
    return "s1.dcm"


def _b_wrong_modality(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    for k in range(1, 5):
        _edit_slice(dicom_dir / f"s{k}.dcm", lambda ds: setattr(ds, "Modality", "MR"))
    return "s1.dcm"


def _b_no_dicom_files(root: Path) -> str:
    dicom_dir, _ = make_case_tree(root)
    for p in dicom_dir.glob("*.dcm"):
        p.rename(p.with_suffix(".txt"))
    return "DICOM_anon"


def _b_no_ground(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    shutil.rmtree(ground_dir)
    return "Ground"


def _b_png_transposed(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    for k in range(1, 5):
        write_png(ground_dir / f"g{k}.png", np.zeros((COLS, ROWS), np.uint8), "1")
    return "Ground"


def _b_png_one_size(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    write_png(ground_dir / "g3.png", np.zeros((5, 5), np.uint8), "1")
    return "g3.png"


def _b_png_rgb(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    write_png(ground_dir / "g2.png", np.zeros((ROWS, COLS), np.uint8), "RGB")
    return "g2.png"


def _b_png_16bit(root: Path) -> str:
    from PIL import Image

    _, ground_dir = make_case_tree(root)
    Image.fromarray(np.zeros((ROWS, COLS), np.uint16)).save(ground_dir / "g2.png")
    return "g2.png"


def _b_png_truncated(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    _truncate(ground_dir / "g2.png", 0.5)
    return "g2.png"


def _b_png_not_png(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    (ground_dir / "g4.png").write_bytes(b"GIF89a not really")
    return "g4.png"


def _b_png_count(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    (ground_dir / "g4.png").unlink()
    return "Ground"


def _b_ct_label_values(root: Path) -> str:
    _, ground_dir = make_case_tree(root)
    grey = np.zeros((ROWS, COLS), np.uint8)
    grey[2:5, 2:5] = 128  # neither 0/1 nor 255: not a CT liver mask
    write_png(ground_dir / "g2.png", grey, "L")
    return "Ground"


def _b_mr_label_values(root: Path) -> str:
    _, ground_dir = make_case_tree(root, kind="mr")
    for k in range(1, 5):
        grey = np.zeros((ROWS, COLS), np.uint8)
        grey[2:5, 2:5] = 30  # in no organ range (55,70], (110,135], (175,200], (240,255]
        grey[6:8, 2:5] = 90
        write_png(ground_dir / f"g{k}.png", grey, "L")
    return "Ground"


CONVERT_CASES: dict[str, Callable[[Path], str]] = {
    "pydicom_MR_truncated": _pydicom_file("MR_truncated.dcm"),
    "pydicom_no_meta": _pydicom_file("no_meta.dcm"),
    "pydicom_badVR": _pydicom_file("badVR.dcm"),
    "dcm_truncated_mid_header": _b_truncated,
    "dcm_truncated_in_pixel_data": _b_truncated_in_pixel_data,
    "dcm_truncated_header": _b_truncated_header,
    "dcm_not_dicom": _b_not_dicom,
    "dcm_empty_file": _b_empty_dcm,
    "dcm_without_pixel_data": _b_no_pixel_data,
    "dcm_short_pixel_data": _b_short_pixel_data,
    "dcm_mixed_rows_columns": _b_mixed_size,
    "dcm_duplicate_ipp": _b_duplicate_ipp,
    "dcm_missing_pixel_spacing_first": _b_missing_spacing_first,
    "dcm_missing_pixel_spacing_later": _b_missing_spacing_later,
    "dcm_zero_pixel_spacing": _b_zero_spacing,
    "dcm_missing_ipp": _b_missing_ipp,
    "dcm_degenerate_iop": _b_bad_iop,
    "dcm_wrong_modality": _b_wrong_modality,
    "dcm_folder_without_dcm": _b_no_dicom_files,
    "ground_missing": _b_no_ground,
    "png_wrong_size_all": _b_png_transposed,
    "png_wrong_size_one": _b_png_one_size,
    "png_wrong_mode_rgb": _b_png_rgb,
    "png_wrong_mode_16bit": _b_png_16bit,
    "png_truncated": _b_png_truncated,
    "png_not_png": _b_png_not_png,
    "png_count_mismatch": _b_png_count,
    "label_values_ct": _b_ct_label_values,
    "label_values_mr_outside_every_range": _b_mr_label_values,
}


def _case_of(root: Path):
    cases = {c.case: c for c in discover_cases(root)}
    return cases.get("ct_1") or cases["mr_1_t2spir"]


@pytest.mark.parametrize("name", sorted(CONVERT_CASES))
def test_converter_library(name: str, tmp_path: Path) -> None:
    root = tmp_path / "chaos"
    expected = CONVERT_CASES[name](root)
    case = _case_of(root)
    out = tmp_path / "out"
    expect_invalid(lambda: convert_case(case, out), expected)
    assert not any(p.exists() for p in case_outputs(case, out).values())
    assert_no_outputs(out, case.case)


@pytest.mark.parametrize("name", sorted(CONVERT_CASES))
def test_converter_cli(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "chaos"
    expected = CONVERT_CASES[name](root)
    case = _case_of(root)
    make_case_tree(root, case_id="2", seed=1)  # a good case beside the bad one still converts
    out = tmp_path / "out"
    modality = "ct" if case.modality == "ct" else "t2spir"
    line = expect_cli_error(["convert", str(root), str(out), "--quiet", "--modality", modality], capsys, expected,
                            line_start=f"FAILED {case.case}:")
    assert case.case in line
    assert_no_outputs(out, case.case)
    if case.modality == "ct":
        entries = json.loads((out / "datalist.json").read_text())["training"]
        assert [e["case"] for e in entries] == ["ct_2"]


# ---------------------------------------------------------------------------------------------------------------
# readers on their own (a series that is only the malformed file), and folders that are missing or empty


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "no_meta.dcm", "badVR.dcm"])
def test_reader_on_pydicom_malformed_file(name: str, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copyfile(get_testdata_file(name), folder / name)
    expect_invalid(lambda: read_dicom_series(folder), name)


def test_readers_on_missing_and_empty_folders(tmp_path: Path) -> None:
    expect_invalid(lambda: read_dicom_series(tmp_path / "absent"), "absent")
    expect_invalid(lambda: read_png_stack(tmp_path / "absent"), "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.dcm").write_bytes(b"x")  # hidden files are not slices
    expect_invalid(lambda: list_slices(tmp_path / "empty"), "empty")
    expect_invalid(lambda: discover_cases(tmp_path / "empty"), "empty")


def test_convert_cli_on_a_root_without_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "nothing").mkdir()
    expect_cli_error(["convert", str(tmp_path / "nothing"), str(tmp_path / "out"), "--quiet"], capsys, "nothing")
    assert not (tmp_path / "out" / "datalist.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# single-slice series: converted, slice spacing from SliceThickness (data contract), with a warning


@pytest.mark.parametrize("thickness", [3.0, None])
def test_single_slice_series_falls_back_to_slice_thickness(thickness, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "chaos"
    dicom_dir, _ = make_case_tree(root, n=1)
    if thickness is None:
        _edit_slice(dicom_dir / "s1.dcm", lambda ds: delattr(ds, "SliceThickness"))
    with caplog.at_level(logging.WARNING):
        result = convert_case(_case_of(root), tmp_path / "out")
    assert result["status"] == "converted"
    assert any("single-slice" in r.getMessage() for r in caplog.records)
    img = nib.load(tmp_path / "out" / "imagesTr" / "ct_1.nii.gz")
    lab = nib.load(tmp_path / "out" / "labelsTr" / "ct_1.nii.gz")
    assert img.shape == (COLS, ROWS, 1) and lab.shape == (COLS, ROWS, 1)
    # IOP (1,0,0,0,1,0): slice normal +z (LPS and RAS alike), times SliceThickness or 1 mm
    np.testing.assert_allclose(img.affine[:3, 2], [0.0, 0.0, thickness or 1.0])
    assert np.array_equal(img.affine, lab.affine)


# ---------------------------------------------------------------------------------------------------------------
# datalists: empty, not JSON, pointing at missing files


def _datalist(tmp_path: Path, training: list[dict], test: list[dict] | None = None) -> Path:
    path = tmp_path / "data" / "datalist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"training": training, "test": test or []}))
    return path


def _label_volume(path: Path, shape=(6, 5, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros(shape, np.uint8)
    data[1:3, 1:3, :] = 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


ENTRY = {"image": "imagesTr/ct_1.nii.gz", "label": "labelsTr/ct_1.nii.gz", "case": "ct_1", "modality": "ct",
         "chaos_id": "1", "fold": 0}


def test_empty_datalist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    datalist = _datalist(tmp_path, [])
    preds = tmp_path / "preds"
    preds.mkdir()
    expect_invalid(lambda: evaluate_datalist(datalist, preds), "datalist.json")
    expect_invalid(lambda: export_submission(preds, datalist, tmp_path / "sub"), "datalist.json")
    expect_invalid(lambda: inverse_frequency_weights([]), "datalist")
    expect_cli_error(["evaluate", "--datalist", str(datalist), "--pred", str(preds)], capsys, "datalist.json")
    expect_cli_error(["export-submission", str(preds), str(datalist), str(tmp_path / "sub")], capsys,
                     "datalist.json")
    assert not (tmp_path / "sub").exists() or not any((tmp_path / "sub").rglob("*.png"))


def test_datalist_not_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    datalist = tmp_path / "datalist.json"
    datalist.write_text('{"training": [')
    expect_invalid(lambda: load_datalist(datalist), "datalist.json")
    expect_cli_error(["evaluate", "--datalist", str(datalist), "--pred", str(tmp_path)], capsys, "datalist.json")
    expect_invalid(lambda: load_datalist(tmp_path / "missing.json"), "missing.json")


def test_datalist_pointing_at_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    datalist = _datalist(tmp_path, [ENTRY], [dict(ENTRY, case="ct_3", chaos_id="3", label=None)])
    preds = tmp_path / "preds"
    _label_volume(preds / "ct_1_seg.nii.gz")
    # the label volume named by the datalist does not exist
    expect_invalid(lambda: evaluate_datalist(datalist, preds), "ct_1.nii.gz")
    expect_cli_error(["evaluate", "--datalist", str(datalist), "--pred", str(preds)], capsys, "ct_1.nii.gz")
    expect_invalid(lambda: inverse_frequency_weights([{"label": str(tmp_path / "nope.nii.gz")}]), "nope.nii.gz")
    # the prediction of a listed case does not exist
    expect_invalid(lambda: export_submission(preds, datalist, tmp_path / "sub"), "ct_3")
    expect_cli_error(["export-submission", str(preds), str(datalist), str(tmp_path / "sub")], capsys, "ct_3")
    # the image named by the entry is missing: export cannot check the grid
    expect_invalid(lambda: export_submission(preds, datalist, tmp_path / "sub", ("training",)), "ct_1.nii.gz")
    assert not (tmp_path / "sub").exists() or not any((tmp_path / "sub").rglob("*.png"))


def test_evaluate_on_bad_label_volumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ground = _label_volume(tmp_path / "ground.nii.gz")
    nan = tmp_path / "nan_pred.nii.gz"
    data = np.zeros((6, 5, 3), np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan)
    expect_invalid(lambda: evaluate_case(ground, nan), "nan_pred.nii.gz")
    expect_cli_error(["evaluate", "--ground", str(ground), "--pred", str(nan)], capsys, "nan_pred.nii.gz")
    small = _label_volume(tmp_path / "small_pred.nii.gz", (6, 5, 2))
    expect_invalid(lambda: evaluate_case(ground, small), "small_pred.nii.gz")
    junk = tmp_path / "junk_pred.nii.gz"
    junk.write_bytes(b"\x1f\x8b not gzip")
    expect_cli_error(["evaluate", "--ground", str(ground), "--pred", str(junk)], capsys, "junk_pred.nii.gz")


# ---------------------------------------------------------------------------------------------------------------
# inference (the bundle's inference.json): NaN/Inf voxels, wrong channels or rank, non-NIfTI file, missing input


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([6.0, 6.0, 5.0, 1.0])), path)
    return path


def _nan_volume(path: Path) -> Path:
    data = np.zeros((16, 16, 3), np.float32)
    data[3, 4, 1] = np.nan
    return _nifti(path, data)


def _inf_volume(path: Path) -> Path:
    data = np.zeros((16, 16, 3), np.float32)
    data[3, 4, 1] = -np.inf
    return _nifti(path, data)


def _two_channel_volume(path: Path) -> Path:
    return _nifti(path, np.zeros((16, 16, 3, 2), np.float32))


def _two_d_image(path: Path) -> Path:
    return _nifti(path, np.zeros((16, 16), np.float32))


def _not_nifti(path: Path) -> Path:
    path.write_bytes(b"\x1f\x8b\x08\x00 truncated gzip")
    return path


INFERENCE_CASES = {
    "nan_voxel": _nan_volume,
    "inf_voxel": _inf_volume,
    "two_channels_4d": _two_channel_volume,
    "two_dimensional": _two_d_image,
    "not_nifti": _not_nifti,
}


@pytest.mark.parametrize("name", sorted(INFERENCE_CASES))
def test_inference_bad_input(name: str, tmp_path: Path) -> None:
    image = INFERENCE_CASES[name](tmp_path / f"{name}_input.nii.gz")
    out = tmp_path / "pred"
    STATS["bad inputs tried (bundle inference)"] += 1
    try:
        workflow = inference_workflow(image, out, tmp_path)
        workflow.initialize()
        workflow.run()
    except Exception as e:
        # MONAI/ignite wrap a transform's error in RuntimeErrors; the documented error must be in the chain.
        found = first_exception_of(e, InvalidInputError)
        if found is None:
            STATS["bad inputs escaped (bundle inference)"] += 1
            pytest.fail(f"no InvalidInputError in the chain of {type(e).__name__}: {e}")
        assert image.name in str(found)
    else:
        pytest.fail("bad input accepted by inference")
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "output written for a failed input"


def test_inference_inputs_missing_or_empty(tmp_path: Path) -> None:
    expect_invalid(lambda: list_inference_inputs(tmp_path / "absent.nii.gz"), "absent.nii.gz")
    (tmp_path / "empty").mkdir()
    expect_invalid(lambda: list_inference_inputs(tmp_path / "empty"), "empty")


def test_inference_single_slice_volume(tmp_path: Path) -> None:
    """A one-slice volume is valid input: the 2D network segments it and the output keeps its geometry."""
    image = _nifti(tmp_path / "one_slice.nii.gz", np.random.default_rng(0).normal(size=(16, 16, 1)).astype("f4"))
    workflow = inference_workflow(image, tmp_path / "pred", tmp_path)
    workflow.initialize()
    workflow.run()
    (pred,) = (tmp_path / "pred").glob("*.nii.gz")
    assert nib.load(pred).shape[:3] == (16, 16, 1)
    np.testing.assert_allclose(nib.load(pred).affine, nib.load(image).affine, atol=1e-4)
