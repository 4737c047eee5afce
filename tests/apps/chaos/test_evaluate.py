"""``scse-monai evaluate`` on tiny synthetic PNG / NIfTI / DICOM inputs: values, outputs and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from scse_monai.apps.chaos.labelmaps import find_prediction
from scse_monai.apps.chaos.phantom import save_dicom_file
from scse_monai.apps.chaos.scoring import evaluate_case
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import compute_chaos_metrics, evaluate_label_volumes


def _write_pngs(folder: Path, vol: np.ndarray, one_bit: bool, start: int = 0, prefix: str = "s") -> Path:
    """Write ``vol`` (x, y, z) as PNG slices: slice k is ``vol[:, :, k].T`` (rows x columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(vol.shape[2]):
        arr = np.ascontiguousarray(vol[:, :, k].T)
        img = Image.fromarray(arr.astype(bool)) if one_bit else Image.fromarray(arr.astype(np.uint8), mode="L")
        img.save(folder / f"{prefix}{k + start}.png")  # unpadded: natural order must sort s2 < s10
    return folder


def _write_dicoms(folder: Path, n: int, rows: int, cols: int, pixel_spacing, step: float, modality: str = "CT"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = meta.MediaStorageSOPClassUID, generate_uid(), series
        ds.Modality = modality
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = list(pixel_spacing)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-10.0, 5.0, 100.0 - step * k]  # names run superior -> inferior, like CHAOS CT
        ds.SliceThickness = 9.9  # deliberately wrong: the step must come from ImagePositionPatient
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.zeros((rows, cols), np.uint16).tobytes()
        save_dicom_file(ds, folder / f"i{k:04d},0000b.dcm")
    return folder


def _liver(shape=(10, 12, 8)) -> np.ndarray:
    v = np.zeros(shape, dtype=np.uint8)
    v[2:7, 3:9, 1:6] = 1
    return v


def _run(argv, capsys):
    rc = main(["evaluate", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_png_ct_with_dicom_geometry_uses_official_mapping(tmp_path, capsys):
    # Non-square pixels: a shift along PNG columns must be measured with PixelSpacing[1], along rows with [0].
    ps = (0.5, 2.0)  # (row spacing, column spacing)
    ref = _liver()
    pred_cols = np.roll(ref, 1, axis=0)  # axis 0 of (x, y, z) = PNG column
    g = _write_pngs(tmp_path / "Ground", ref, one_bit=True)
    p = _write_pngs(tmp_path / "Seg", pred_cols * 63, one_bit=False, start=1, prefix="results")
    d = _write_dicoms(tmp_path / "DICOM_anon", ref.shape[2], ref.shape[1], ref.shape[0], ps, step=3.0)
    rc, out, err = _run(["--ground", g, "--pred", p, "--dicom", d, "--json", tmp_path / "o.json"], capsys)
    assert rc == 0, err
    res = json.loads((tmp_path / "o.json").read_text())
    assert set(res) == {"liver", "mean"}
    expected = compute_chaos_metrics(pred_cols, ref, (2.0, 0.5, 3.0))
    for k, v in expected.items():
        assert res["liver"][k] == pytest.approx(v)
    assert res["liver"]["mssd"] == pytest.approx(2.0)
    assert "liver" in out and "DICE" in out
    # the same along rows: 0.5 mm
    pred_rows = np.roll(ref, 1, axis=1)
    p2 = _write_pngs(tmp_path / "Seg2", pred_rows, one_bit=True)
    assert evaluate_case(g, p2, dicom=d)["liver"]["mssd"] == pytest.approx(0.5)
    # and along slices: the IPP step (3 mm), not SliceThickness
    p3 = _write_pngs(tmp_path / "Seg3", np.roll(ref, 1, axis=2), one_bit=True)
    assert evaluate_case(g, p3, dicom=d)["liver"]["mssd"] == pytest.approx(3.0)


def test_png_spacing_json_and_csv(tmp_path, capsys):
    ref = _liver()
    pred = ref.copy()
    pred[2:7, 3:9, 6] = 1  # one extra slice
    g = _write_pngs(tmp_path / "g", ref, one_bit=True)
    p = _write_pngs(tmp_path / "p", pred * 63, one_bit=False)
    args = ["--ground", g, "--pred", p, "--spacing", 0.7, 0.7, 2.5, "--json", tmp_path / "o.json"]
    rc, out, err = _run([*args, "--csv", tmp_path / "o.csv"], capsys)
    assert rc == 0, err
    res = json.loads((tmp_path / "o.json").read_text())
    keys = {"dice", "ravd", "assd", "mssd", "score_dice", "score_ravd", "score_assd", "score_mssd", "score"}
    assert set(res["liver"]) == keys and set(res["mean"]) == keys
    assert res["liver"]["ravd"] == pytest.approx(20.0)  # 6 slices vs 5: percent
    assert res["liver"]["mssd"] == pytest.approx(2.5)
    assert res["liver"]["dice"] == pytest.approx(2 * 5 / 11)
    with open(tmp_path / "o.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["organ"] for r in rows] == ["liver", "mean"]
    assert float(rows[0]["ravd"]) == pytest.approx(20.0)


def test_mr_grey_pngs_multi_organ(tmp_path):
    ref = np.zeros((12, 12, 6), dtype=np.uint8)
    ref[1:5, 1:5, 1:5] = 1
    ref[7:10, 7:10, 1:4] = 3
    grey_ref = np.choose(ref, [0, 63, 126, 189, 252]).astype(np.uint8)
    grey_pred = grey_ref.copy()
    grey_pred[grey_pred == 63] = 60  # off-nominal but inside (55, 70]
    grey_pred[7:10, 7:10, 4] = 189  # left kidney one slice too long
    g = _write_pngs(tmp_path / "g", grey_ref, one_bit=False)
    p = _write_pngs(tmp_path / "p", grey_pred, one_bit=False)
    res = evaluate_case(g, p, spacing=(1.5, 1.5, 6.0))
    pred = ref.copy()
    pred[7:10, 7:10, 4] = 3
    assert res == evaluate_label_volumes(pred, ref, (1.5, 1.5, 6.0))
    assert set(res) == {"liver", "left kidney", "mean"}


def test_nifti_inputs_use_affine(tmp_path, capsys):
    ref = np.zeros((10, 10, 8), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[6:9, 6:9, 3:6] = 4
    pred = ref.copy()
    pred[6:9, 6:9, 6] = 4
    aff = np.diag([-0.8, -0.8, 4.0, 1.0])
    nib.save(nib.Nifti1Image(ref, aff), tmp_path / "g.nii.gz")
    nib.save(nib.Nifti1Image(pred.astype(np.float32), aff), tmp_path / "p.nii.gz")
    argv = ["--ground", tmp_path / "g.nii.gz", "--pred", tmp_path / "p.nii.gz", "--json", tmp_path / "o.json"]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["spleen"]["mssd"] == pytest.approx(4.0)
    assert res["liver"]["score"] == pytest.approx(100.0)
    assert res["mean"]["score"] == pytest.approx((100.0 + res["spleen"]["score"]) / 2)


@pytest.mark.parametrize("problem", ["shape", "unreadable", "no_geometry", "ct_non_binary", "slice_count", "missing"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, problem):
    ref = _liver()
    g = _write_pngs(tmp_path / "g", ref, one_bit=True)
    p = _write_pngs(tmp_path / "p", ref, one_bit=True)
    args = ["--ground", g, "--pred", p, "--spacing", 1, 1, 1]
    expect = {
        "shape": "shape mismatch",
        "unreadable": "unreadable",
        "no_geometry": "spacing unknown",
        "ct_non_binary": "expected a liver mask",
        "slice_count": "expected one mask per DICOM slice",
        "missing": "not found",
    }[problem]
    if problem == "shape":
        (p / "s7.png").unlink()
    elif problem == "unreadable":
        bad = tmp_path / "bad.nii.gz"
        bad.write_bytes(b"not a nifti file at all")
        args = ["--ground", g, "--pred", bad, "--spacing", 1, 1, 1]
    elif problem == "no_geometry":
        args = args[:4]
    elif problem == "ct_non_binary":
        g = _write_pngs(tmp_path / "g2", ref * 63, one_bit=False)
        d = _write_dicoms(tmp_path / "d", ref.shape[2], ref.shape[1], ref.shape[0], (1.0, 1.0), 2.0)
        args = ["--ground", g, "--pred", p, "--dicom", d]
    elif problem == "slice_count":
        d = _write_dicoms(tmp_path / "d", ref.shape[2] + 1, ref.shape[1], ref.shape[0], (1.0, 1.0), 2.0)
        args = ["--ground", g, "--pred", p, "--dicom", d]
    elif problem == "missing":
        args = ["--ground", tmp_path / "nope", "--pred", p, "--spacing", 1, 1, 1]
    rc, out, err = _run(args, capsys)
    assert rc == 2
    assert expect in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_find_prediction_layouts(tmp_path):
    (tmp_path / "ct_1").mkdir()
    (tmp_path / "ct_1" / "ct_1_seg.nii.gz").touch()
    (tmp_path / "ct_10.nii.gz").touch()
    (tmp_path / ".ct_2.nii.gz").touch()
    assert find_prediction(tmp_path, "ct_1") == tmp_path / "ct_1" / "ct_1_seg.nii.gz"  # not ct_10
    assert find_prediction(tmp_path, "ct_10") == tmp_path / "ct_10.nii.gz"
    with pytest.raises(InvalidInputError, match="no prediction"):
        find_prediction(tmp_path, "ct_2")  # hidden files ignored
    (tmp_path / "ct_1.nii.gz").touch()
    with pytest.raises(InvalidInputError, match="ambiguous"):
        find_prediction(tmp_path, "ct_1")


def test_batch_mode_over_datalist(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "labelsTr").mkdir(parents=True)
    preds = tmp_path / "preds"
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    cases = {}
    for i, name in enumerate(["ct_1", "mr_2_t2spir"]):
        ref = np.zeros((8, 8, 6), dtype=np.uint8)
        ref[1:5, 1:5, 1:4] = 1
        if name.startswith("mr"):
            ref[5:7, 5:7, 2:5] = 2
        pred = ref.copy()
        pred[1:5, 1:5, 4] = 1 if i else 0
        nib.save(nib.Nifti1Image(ref, aff), root / "labelsTr" / f"{name}.nii.gz")
        (preds / name).mkdir(parents=True)
        nib.save(nib.Nifti1Image(pred, aff), preds / name / f"{name}_seg.nii.gz")
        cases[name] = evaluate_label_volumes(pred, ref, aff)
    entries = [
        {"image": f"imagesTr/{n}.nii.gz", "label": f"labelsTr/{n}.nii.gz", "case": n, "fold": i}
        for i, n in enumerate(cases)
    ]
    (root / "datalist.json").write_text(json.dumps({"training": entries, "test": [{"image": "x", "case": "ct_9"}]}))
    argv = ["--datalist", root / "datalist.json", "--pred", preds, "--json", tmp_path / "b.json"]
    rc, out, err = _run([*argv, "--csv", tmp_path / "b.csv"], capsys)
    assert rc == 0, err
    res = json.loads((tmp_path / "b.json").read_text())
    assert set(res["cases"]) == set(cases)
    expected_mean = np.mean([c["mean"]["score"] for c in cases.values()])
    assert res["mean"]["mean"]["score"] == pytest.approx(expected_mean)
    assert res["mean"]["right kidney"]["dice"] == pytest.approx(cases["mr_2_t2spir"]["right kidney"]["dice"])
    with open(tmp_path / "b.csv", newline="") as f:
        keys = [(r["case"], r["organ"]) for r in csv.DictReader(f)]
    assert ("ct_1", "mean") in keys and keys[-1] == ("mean", "mean")
    # --fold restricts; a missing prediction is one clear error
    argv = ["--datalist", root / "datalist.json", "--pred", preds, "--fold", 1, "--json", tmp_path / "f.json"]
    rc, _, _ = _run(argv, capsys)
    assert rc == 0 and list(json.loads((tmp_path / "f.json").read_text())["cases"]) == ["mr_2_t2spir"]
    (preds / "ct_1" / "ct_1_seg.nii.gz").unlink()
    rc, _, err = _run(["--datalist", root / "datalist.json", "--pred", preds], capsys)
    assert rc == 2 and "no prediction for case 'ct_1'" in err
