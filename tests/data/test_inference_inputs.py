from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from scse_monai.apps.chaos.phantom import save_dicom_file
from scse_monai.data import inverse_frequency_weights, list_inference_inputs
from scse_monai.errors import InvalidInputError


def _nifti(path, data) -> None:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), str(path))


def _dicom_slice(path, z: float, series_uid: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = CTImageStorage, generate_uid(), series_uid
    ds.Modality, ds.Rows, ds.Columns, ds.PixelSpacing = "CT", 3, 2, [1.0, 1.0]
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0.0, 0.0, z]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((3, 2), "<u2").tobytes()
    save_dicom_file(ds, path)


def test_inputs_file_series_and_folder(tmp_path) -> None:
    from pydicom.uid import generate_uid

    series = tmp_path / "series"
    series.mkdir()
    uid = generate_uid()
    _dicom_slice(series / "i0000,0000b.dcm", 0.0, uid)
    _dicom_slice(series / "i0001,0000b.dcm", 2.0, uid)
    (series / "._i0000,0000b.dcm").write_bytes(b"")  # macOS resource fork: ignored
    _nifti(tmp_path / "b.nii.gz", np.zeros((2, 2, 2), np.float32))
    _nifti(tmp_path / "a.nii", np.zeros((2, 2, 2), np.float32))
    (tmp_path / "notes.txt").write_text("x")
    assert list_inference_inputs(tmp_path / "a.nii") == [{"image": str(tmp_path / "a.nii"), "name": "a"}]
    assert list_inference_inputs(series) == [{"image": str(series), "name": "series"}]  # no PatientID/SeriesNumber
    assert list_inference_inputs(tmp_path) == [
        {"image": str(tmp_path / n), "name": n.split(".")[0]} for n in ("a.nii", "b.nii.gz", "series")
    ]


def test_inputs_refuse_collisions_fifos_and_mixed_series(tmp_path) -> None:
    import os

    from pydicom.uid import generate_uid

    _nifti(tmp_path / "scan.nii", np.zeros((2, 2, 2), np.float32))
    _nifti(tmp_path / "scan.nii.gz", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(InvalidInputError, match=r"scan\.nii.* would both be saved as scan_seg\*"):
        list_inference_inputs(tmp_path)
    (tmp_path / "scan.nii").unlink()
    with pytest.raises(InvalidInputError, match="output lies inside the input"):
        list_inference_inputs(tmp_path, tmp_path / "pred")
    assert list_inference_inputs(tmp_path, tmp_path.parent / "pred") == [
        {"image": str(tmp_path / "scan.nii.gz"), "name": "scan"}
    ]
    series = tmp_path / "two"
    series.mkdir()
    _dicom_slice(series / "a.dcm", 0.0, generate_uid())
    _dicom_slice(series / "b.dcm", 2.0, generate_uid())
    with pytest.raises(InvalidInputError, match=r"b\.dcm: SeriesInstanceUID .* expected one series per folder"):
        list_inference_inputs(series)
    fifo = tmp_path / "fifo" / "x.nii.gz"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        list_inference_inputs(fifo)


def test_inputs_errors(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        list_inference_inputs(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="found no NIfTI file"):
        list_inference_inputs(tmp_path)


def test_inverse_frequency_weights_formula(tmp_path) -> None:
    a = np.zeros((10, 10, 1), np.uint8)
    a[:5, :2] = 1  # 10 voxels of class 1, 90 of class 0
    b = np.zeros((10, 10, 1), np.uint8)
    b[0, :5] = 2  # 5 voxels of class 2, 95 of class 0
    _nifti(tmp_path / "a.nii.gz", a)
    _nifti(tmp_path / "b.nii.gz", b)
    weights = inverse_frequency_weights([{"label": str(tmp_path / "a.nii.gz")}, {"label": str(tmp_path / "b.nii.gz")}],
                                        num_classes=4)
    counts = np.array([185, 10, 5])
    raw = 1 / counts
    expected = raw / raw.mean()
    np.testing.assert_allclose(weights[:3], expected)
    assert weights[3] == 0.0  # absent class


def test_inverse_frequency_weights_rejects_bad_labels(tmp_path) -> None:
    _nifti(tmp_path / "c.nii.gz", np.full((2, 2, 2), 7, np.uint8))
    with pytest.raises(InvalidInputError, match="c.nii.gz: label values must be in \\[0, 5\\)"):
        inverse_frequency_weights([{"label": str(tmp_path / "c.nii.gz")}])


def _datalist(tmp_path, entries) -> str:
    import json

    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": entries}))
    return str(path)


def test_select_cases_by_fold_and_modality(tmp_path) -> None:
    from scse_monai.data import select_cases

    for name in ("a", "b", "c"):
        _nifti(tmp_path / f"{name}.nii.gz", np.zeros((2, 2, 2), np.uint8))
    entries = [
        {"image": "a.nii.gz", "label": "a.nii.gz", "case": "ct_1", "modality": "ct", "fold": 0, "echo_time": None},
        {"image": "b.nii.gz", "label": "b.nii.gz", "case": "mr_1_t2spir", "modality": "t2spir", "fold": 1},
        {"image": "c.nii.gz", "label": "c.nii.gz", "case": "ct_2", "modality": "ct", "fold": 1},
    ]
    dl = _datalist(tmp_path, entries)
    train = select_cases(dl, fold=0)
    assert [d["image"] for d in train] == [str(tmp_path / "b.nii.gz"), str(tmp_path / "c.nii.gz")]
    assert set(train[0]) == {"image", "label", "modality"}  # uniform keys for collation
    assert [d["modality"] for d in select_cases(dl, fold=1, validation=True, modalities=["ct"])] == ["ct"]
    with pytest.raises(InvalidInputError, match="no cases for the validation fold 3.*folds \\[0, 1\\]"):
        select_cases(dl, fold=3, validation=True)


def test_select_cases_reports_missing_and_empty(tmp_path) -> None:
    from scse_monai.data import select_cases

    dl = _datalist(tmp_path, [{"image": "gone.nii.gz", "label": "gone.nii.gz", "case": "ct_9", "fold": 1}])
    with pytest.raises(InvalidInputError, match="image file of case ct_9 is missing"):
        select_cases(dl, fold=0)
    with pytest.raises(InvalidInputError, match="datalist.json: no cases for the training folds"):
        select_cases(_datalist(tmp_path, []), fold=0)


def test_tree_names_collisions_and_existing_outputs(tmp_path) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    from scse_monai.data.naming import chaos_case_name, chaos_series_of, series_name

    series = tmp_path / "in" / "study" / "deep" / "series"  # a DICOM series three levels down, named by its header
    series.mkdir(parents=True)
    uid = generate_uid()
    for k in range(2):
        _dicom_slice(series / f"s{k}.dcm", 2.0 * k, uid)
    for p in series.glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.PatientID, ds.SeriesNumber = "P 01/a", 3
        ds.save_as(p)
    (tmp_path / "in" / "a").mkdir()
    _nifti(tmp_path / "in" / "a" / "scan.nii.gz", np.zeros((2, 2, 2), np.float32))
    assert series_name(series) == "P_01_a_s3"
    out = tmp_path / "out"
    assert list_inference_inputs(tmp_path / "in", out) == [
        {"image": str(tmp_path / "in" / "a" / "scan.nii.gz"), "name": "scan"},
        {"image": str(series), "name": "P_01_a_s3"},
    ]
    out.mkdir()
    (out / "scan_seg.nii.gz").write_bytes(b"earlier result")
    with pytest.raises(InvalidInputError, match=r"out: 1 prediction\(s\) exist already: .*scan_seg\.nii\.gz; .*"
                                                r"--overwrite true .* --skip_existing true"):
        list_inference_inputs(tmp_path / "in", out)
    assert len(list_inference_inputs(tmp_path / "in", out, overwrite=True)) == 2
    assert [d["name"] for d in list_inference_inputs(tmp_path / "in", out, skip_existing=True)] == ["P_01_a_s3"]
    assert (out / "scan_seg.nii.gz").read_bytes() == b"earlier result"
    (tmp_path / "in" / "b").mkdir()
    _nifti(tmp_path / "in" / "b" / "scan.nii", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(InvalidInputError, match=r"in/b/scan\.nii and .*in/a/scan\.nii\.gz would both be saved as "
                                                r"scan_seg\*; expected one input per output name"):
        list_inference_inputs(tmp_path / "in", out)
    with pytest.raises(InvalidInputError, match="output_format 'png'; expected one of nifti, dicom_seg, both"):
        list_inference_inputs(tmp_path / "in" / "a", output_format="png")
    with pytest.raises(InvalidInputError, match="needs DICOM series inputs; found NIfTI files only"):
        list_inference_inputs(tmp_path / "in" / "a", output_format="dicom_seg")
    # the CHAOS layout, wherever the tree starts
    layouts = [("CT/7/DICOM_anon", "ct_7"), ("MR/2/T1DUAL/DICOM_anon/InPhase", "mr_2_t1dual_in"),
               ("MR/2/T1DUAL/DICOM_anon/OutPhase", "mr_2_t1dual_out"), ("MR/2/T2SPIR/DICOM_anon", "mr_2_t2spir")]
    for rel, name in layouts:
        modality, chaos_id = chaos_series_of(tmp_path / "x" / rel)
        assert chaos_case_name(modality, chaos_id) == name
    assert chaos_series_of(tmp_path / "MR" / "2" / "T1DUAL" / "DICOM_anon") is None


def test_dicom_seg_needs_evenly_spaced_slices(tmp_path) -> None:
    from pydicom.uid import generate_uid

    series = tmp_path / "uneven"
    series.mkdir()
    uid = generate_uid()
    for k, z in enumerate((0.0, 2.0, 5.0)):  # first/last affine: steps of 2.5 mm, slice 1 is 0.5 mm off
        _dicom_slice(series / f"i{k}.dcm", z, uid)
    assert [d["name"] for d in list_inference_inputs(series)] == ["uneven"]  # NIfTI output: accepted
    with pytest.raises(InvalidInputError, match=r"uneven: slice positions deviate up to 0\.5 mm from an even 2\.5 mm "
                                                r"grid; expected evenly spaced slices for a DICOM SEG"):
        list_inference_inputs(series, output_format="dicom_seg")
