from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from monai.data import load_decathlon_datalist
from pydicom.data import get_testdata_file

from scse_monai.apps.chaos.convert import assign_folds, convert_chaos
from scse_monai.apps.chaos.phantom import make_phantom, simulate_case
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError

SEED, SIZE = 3, 64  # CT 64 x 64 x 40, MR 32 x 32 x 26


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), n_ct=2, n_mr=1, seed=SEED, size=SIZE, test_cases=1)


@pytest.fixture(scope="module")
def converted(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    report = convert_chaos(phantom, out, progress=False)
    return out, report


def snapshot(root: Path) -> dict:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, hashlib.md5(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def expected_affine(grid) -> np.ndarray:
    # LPS -> RAS by hand for IOP (1,0,0,0,1,0): negate x and y, slice step along z
    x0, y0, z0 = grid.ipp_first
    return np.array(
        [[-grid.spacing, 0, 0, -x0], [0, -grid.spacing, 0, -y0], [0, 0, grid.step, z0], [0, 0, 0, 1]], dtype=float
    )


@pytest.mark.parametrize(
    "case, kind, index, series",
    [("ct_1", "ct", 0, "ct"), ("ct_2", "ct", 1, "ct"), ("mr_1_t1dual_in", "mr", 0, "t1dual_in"),
     ("mr_1_t1dual_out", "mr", 0, "t1dual_out"), ("mr_1_t2spir", "mr", 0, "t2spir")],
)  # fmt: skip
def test_round_trip(converted, case, kind, index, series):
    out, report = converted
    truth = simulate_case(kind, index, SEED, SIZE).series[series]
    img = nib.load(out / "imagesTr" / f"{case}.nii.gz")
    lab = nib.load(out / "labelsTr" / f"{case}.nii.gz")
    assert img.get_data_dtype() == np.float32 and lab.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(lab.dataobj), truth.labels)
    hu_offset = -1000.0 if kind == "ct" else 0.0
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), truth.stored.astype(np.float32) + hu_offset)
    np.testing.assert_array_equal(img.affine, lab.affine)
    np.testing.assert_array_equal(img.affine, expected_affine(truth.grid))
    assert case in report.converted


def test_datalist(converted):
    out, report = converted
    assert report.ok and report.datalist == out / "datalist.json"
    training = load_decathlon_datalist(out / "datalist.json", data_list_key="training")
    test = load_decathlon_datalist(out / "datalist.json", data_list_key="test")
    assert len(training) == 2 + 3 and len(test) == 1 + 3
    for e in training:
        assert Path(e["image"]).is_file() and Path(e["label"]).is_file()
        assert {"case", "modality", "patient", "fold", "chaos_id", "source", "name_order_matches_position"} <= set(e)
    by_case = {e["case"]: e for e in training}
    assert by_case["ct_1"]["name_order_matches_position"] is False  # z decreasing in name order, as the sample
    assert by_case["mr_1_t2spir"]["name_order_matches_position"] is True
    assert by_case["mr_1_t2spir"]["unmapped_label_voxels"] == 0
    assert by_case["ct_2"]["source"] == "Train_Sets/CT/2/DICOM_anon"
    folds = {e["fold"] for e in training if e["patient"] == "mr_1"}
    assert len(folds) == 1
    for e in test:
        assert "label" not in e and "fold" not in e and e["image"].startswith(str(out / "imagesTs"))
    raw = json.loads((out / "datalist.json").read_text())
    assert raw["numTraining"] == 5 and raw["labels"]["2"] == "right kidney"


def test_folds_reproducible_and_patient_level(phantom, converted, tmp_path):
    out, _ = converted
    again = convert_chaos(phantom, tmp_path, modality="ct", progress=False)
    first = {e["case"]: e["fold"] for e in json.loads((out / "datalist.json").read_text())["training"]}
    second = {e["case"]: e["fold"] for e in json.loads(again.datalist.read_text())["training"]}
    assert second == {k: v for k, v in first.items() if k.startswith("ct_")}
    patients = [f"mr_{i}" for i in range(10)] + [f"ct_{i}" for i in range(7)]
    folds = assign_folds(patients + patients[:3], folds=5, seed=0)
    assert folds == assign_folds(list(reversed(patients)), folds=5, seed=0)
    assert sorted(np.bincount([folds[p] for p in patients if p.startswith("mr_")])) == [2, 2, 2, 2, 2]
    assert sorted(np.bincount([folds[p] for p in patients if p.startswith("ct_")], minlength=5)) == [1, 1, 1, 2, 2]
    seeds = [assign_folds(patients, 5, s) for s in range(4)]
    assert any(s != seeds[0] for s in seeds[1:])
    assert set(assign_folds(["ct_1", "ct_2"], 5, 0).values()) == {0, 1}  # fewer patients than folds
    with pytest.raises(InvalidInputError):
        assign_folds(patients, 0)


def test_rerun_skips_and_input_untouched(phantom, tmp_path):
    before = snapshot(phantom)
    first = convert_chaos(phantom, tmp_path, modality="t2spir", progress=False)
    outputs = snapshot(tmp_path)
    second = convert_chaos(phantom, tmp_path, modality="t2spir", progress=False)
    assert first.converted == ["mr_1_t2spir", "mr_4_t2spir"] and second.converted == []
    assert second.skipped == first.converted
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != "datalist.json"} == {
        k: v for k, v in outputs.items() if k != "datalist.json"
    }
    assert json.loads((tmp_path / "datalist.json").read_text())["training"][0]["unmapped_label_voxels"] == 0
    third = convert_chaos(phantom, tmp_path, modality="t2spir", overwrite=True, progress=False)
    assert third.converted == first.converted
    assert snapshot(phantom) == before
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left


def test_interrupted_case_is_redone(phantom, tmp_path, monkeypatch):
    import scse_monai.apps.chaos.convert as convert_module

    real_save = convert_module._save_nifti

    def crash_on_image(img, target):
        if target.name.startswith(".ct_") and "imagesTr" in str(target):
            raise OSError(28, "No space left on device (simulated)")
        real_save(img, target)

    monkeypatch.setattr(convert_module, "_save_nifti", crash_on_image)
    report = convert_chaos(phantom, tmp_path, modality="ct", progress=False)
    assert [c for c, _ in report.failed] == ["ct_1", "ct_2"]
    assert "imagesTr/ct_1.nii.gz: cannot write (No space left on device" in report.failed[0][1]
    # nothing of the case is renamed into place unless all of it is complete: no new label beside a missing image
    assert not (tmp_path / "labelsTr" / "ct_1.nii.gz").exists() and not (tmp_path / "imagesTr" / "ct_1.nii.gz").exists()
    assert not [p for p in tmp_path.rglob(".*")]
    assert report.datalist is None or "ct_1" not in report.datalist.read_text()
    monkeypatch.setattr(convert_module, "_save_nifti", real_save)
    again = convert_chaos(phantom, tmp_path, modality="ct", progress=False)
    assert again.converted == ["ct_1", "ct_2"] and not again.failed


def test_programming_error_surfaces_with_traceback(phantom, tmp_path, monkeypatch):
    """Only bad input and filesystem errors fail a case; a bug propagates instead of becoming a FAILED line."""
    import scse_monai.apps.chaos.convert as convert_module

    def buggy(*args, **kwargs):
        raise TypeError("bug")

    monkeypatch.setattr(convert_module, "_save_nifti", buggy)
    with pytest.raises(TypeError, match="bug"):
        convert_chaos(phantom, tmp_path, modality="ct", progress=False)
    with pytest.raises(TypeError, match="bug"):
        main(["convert", str(phantom), str(tmp_path / "cli"), "--modality", "ct", "--quiet"])


def test_workers_give_same_datalist(phantom, tmp_path):
    one = convert_chaos(phantom, tmp_path / "a", modality="ct", progress=False)
    two = convert_chaos(phantom, tmp_path / "b", modality="ct", workers=2, progress=False)
    assert json.loads(one.datalist.read_text()) == json.loads(two.datalist.read_text())


def test_echo_time_disagreement_is_reported(phantom, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(phantom / "Train_Sets" / "MR", root / "Train_Sets" / "MR")
    dual = root / "Train_Sets" / "MR" / "1" / "T1DUAL" / "DICOM_anon"
    (dual / "InPhase").rename(dual / "tmp")
    (dual / "OutPhase").rename(dual / "InPhase")
    (dual / "tmp").rename(dual / "OutPhase")
    report = convert_chaos(root, tmp_path / "out", modality="t1dual", progress=False)
    assert report.ok and len(report.converted) == 2
    assert any("mr_1_t1dual_in" in w and "EchoTime 2.3 ms" in w for w in report.warnings)
    assert "WARNING mr_1_t1dual_out" in report.summary()


def test_unmapped_voxels_reported(phantom, tmp_path):
    from PIL import Image

    root = tmp_path / "root"
    shutil.copytree(phantom / "Train_Sets" / "MR" / "1", root / "Train_Sets" / "MR" / "1")
    png = sorted((root / "Train_Sets" / "MR" / "1" / "T2SPIR" / "Ground").glob("*.png"))[0]
    arr = np.asarray(Image.open(png)).copy()
    arr[:2, :3] = 32  # "torsal" value: not an organ
    Image.fromarray(arr, mode="L").save(png)
    report = convert_chaos(root, tmp_path / "out", modality="t2spir", progress=False)
    entry = json.loads(report.datalist.read_text())["training"][0]
    assert entry["unmapped_label_voxels"] == 6
    assert any("6 non-zero Ground voxels (values [32])" in w for w in report.warnings)


# ---- bad input: one clear line naming case and file, other cases still converted, exit status 1 ----


def break_missing_ground(case_dir: Path) -> str:
    shutil.rmtree(case_dir / "Ground")
    return r"ct_2: .*CT/2/Ground: Ground folder not found; expected one PNG mask per DICOM slice"


def break_count(case_dir: Path) -> str:
    sorted((case_dir / "Ground").glob("*.png"))[-1].unlink()
    return r"ct_2: .*CT/2/Ground: 39 Ground PNGs for 40 DICOM files .*expected one PNG per DICOM slice"


def break_truncated(case_dir: Path) -> str:
    dicom = sorted((case_dir / "DICOM_anon").glob("*.dcm"))
    for p in dicom:
        p.unlink()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), case_dir / "DICOM_anon" / "MR_truncated.dcm")
    return r"ct_2: .*MR_truncated\.dcm: pixel data holds 8130 bytes but Rows x Columns 64x64"


def break_cut_file(case_dir: Path) -> str:
    p = sorted((case_dir / "DICOM_anon").glob("*.dcm"))[5]
    p.write_bytes(p.read_bytes()[:-100])
    return r"ct_2: .*i0005,0000b\.dcm: pixel data holds 8092 bytes but Rows x Columns 64x64"


def break_garbage(case_dir: Path) -> str:
    (case_dir / "DICOM_anon" / "i0003,0000b.dcm").write_bytes(b"\0" * 50)
    return r"ct_2: .*i0003,0000b\.dcm: (not a DICOM file|unreadable DICOM file)"


def break_mixed_sizes(case_dir: Path) -> str:
    p = case_dir / "DICOM_anon" / "i0007,0000b.dcm"
    ds = pydicom.dcmread(p)
    ds.Rows = ds.Columns = 32
    ds.PixelData = np.zeros((32, 32), "<u2").tobytes()
    ds.save_as(p)
    return r"ct_2: .*i0007,0000b\.dcm: slice size 32x32 .*differs from .*i0000,0000b\.dcm \(64x64\); expected all"


def break_empty(case_dir: Path) -> str:
    for p in (case_dir / "DICOM_anon").iterdir():
        p.unlink()
    return r"ct_2: .*CT/2/DICOM_anon: no \.dcm files found; expected one \.dcm file per slice"


@pytest.mark.parametrize(
    "breaker",
    [break_missing_ground, break_count, break_truncated, break_cut_file, break_garbage, break_mixed_sizes, break_empty],
)
def test_bad_input(phantom, tmp_path, capsys, breaker):
    root = tmp_path / "root"
    shutil.copytree(phantom / "Train_Sets" / "CT", root / "Train_Sets" / "CT")
    pattern = breaker(root / "Train_Sets" / "CT" / "2")
    out = tmp_path / "out"
    rc = main(["convert", str(root), str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    failed_lines = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failed_lines) == 1 and "Traceback" not in captured.err + captured.out
    assert re.search(pattern, failed_lines[0]), failed_lines[0]
    assert "converted 1, skipped (already complete) 0, failed 1" in captured.out
    assert re.search(r"FAILED ct_2: ", captured.out)  # repeated in the summary
    datalist = json.loads((out / "datalist.json").read_text())
    assert [e["case"] for e in datalist["training"]] == ["ct_1"]
    assert (out / "imagesTr" / "ct_1.nii.gz").is_file() and not (out / "imagesTr" / "ct_2.nii.gz").exists()


def test_not_chaos_root(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "random").mkdir(parents=True)
    (root / "random" / "file.txt").write_text("hello")
    rc = main(["convert", str(root), str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "no CHAOS case found; expected a CHAOS root" in err and str(root) in err
    rc = main(["convert", str(root), str(root), "--quiet"])  # an output that is the input is refused
    assert rc == 2 and "output is the input CHAOS root" in capsys.readouterr().err


def test_cli_success(phantom, tmp_path, capsys):
    assert main(["convert", str(phantom), str(tmp_path), "--modality", "t2spir", "--quiet"]) == 0
    assert "converted 2, skipped (already complete) 0, failed 0" in capsys.readouterr().out
