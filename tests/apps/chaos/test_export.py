"""`scse-monai export-submission`: phantom -> convert -> export gives back the Ground PNGs; bad input fails clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from scse_monai.apps.chaos.convert import convert_chaos
from scse_monai.apps.chaos.io import list_slices, read_dicom_series
from scse_monai.apps.chaos.phantom import make_phantom
from scse_monai.cli import main

# Ranges of the organisers' notes, as half-open intervals (nnU-Net v1); written out here, independently of labels.py.
_RANGES = [(55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4)]


def _grey_to_label(a: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape, np.uint8)
    for lo, hi, lab in _RANGES:
        out[(a > lo) & (a <= hi)] = lab
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    base = tmp_path_factory.mktemp("chaos")
    root = make_phantom(base / "raw", n_ct=1, n_mr=1, seed=3, size=32)
    report = convert_chaos(root, base / "conv", progress=False)
    assert not report.failed
    return root, base / "conv"


def _predictions_from_labels(conv: Path, dest: Path, saveimage_layout: bool = True) -> Path:
    """Use the converted label NIfTIs as 'predictions', in MONAI SaveImage's layout."""
    for f in (conv / "labelsTr").glob("*.nii.gz"):
        case = f.name[: -len(".nii.gz")]
        target = dest / case / f"{case}_seg.nii.gz" if saveimage_layout else dest / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    return dest


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L") if img.mode == "1" else img)


def _modes(folder: Path) -> set[str]:
    modes = set()
    for p in list_slices(folder, ".png"):
        with Image.open(p) as img:
            modes.add(img.mode)
    return modes


def test_round_trip_reproduces_ground(converted, tmp_path, capsys):
    root, conv = converted
    preds = _predictions_from_labels(conv, tmp_path / "preds")
    out = tmp_path / "sub"
    rc = main(["export-submission", str(preds), str(conv / "datalist.json"), str(out), "--section", "training"])
    assert rc == 0, capsys.readouterr().err
    pairs = [
        (root / "Train_Sets/CT/1/Ground", out / "CT/1/Results", root / "Train_Sets/CT/1/DICOM_anon", True),
        (root / "Train_Sets/MR/1/T2SPIR/Ground", out / "MR/1/T2SPIR/Results", None, False),
        (root / "Train_Sets/MR/1/T1DUAL/Ground", out / "MR/1/T1DUAL/Results", None, False),
    ]
    for ground_dir, result_dir, dicom_dir, ct in pairs:
        ground = list_slices(ground_dir, ".png")
        result = sorted(p.name for p in result_dir.iterdir())
        assert result == [f"img{k:03d}.png" for k in range(len(ground))]  # sorted order is slice order
        assert _modes(result_dir) == {"L"}
        for g, r in zip(ground, result, strict=True):
            gp, rp = _read_png(g), _read_png(result_dir / r)
            assert rp.shape == gp.shape
            assert set(np.unique(rp)) <= {0, 63, 126, 189, 252}
            if ct:
                np.testing.assert_array_equal(rp > 0, gp > 0)
            else:
                np.testing.assert_array_equal(_grey_to_label(rp), _grey_to_label(gp))
        if dicom_dir is not None:
            assert len(ground) == len(read_dicom_series(dicom_dir, with_pixels=False).files)
    # The exported submission scores perfectly against Ground with the official evaluation.
    rc = main(
        [
            "evaluate",
            "--ground",
            str(root / "Train_Sets/MR/1/T2SPIR/Ground"),
            "--pred",
            str(out / "MR/1/T2SPIR/Results"),
            "--dicom",
            str(root / "Train_Sets/MR/1/T2SPIR/DICOM_anon"),
            "--json",
            str(tmp_path / "e.json"),
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert len(res) > 2 and res["mean"]["score"] == 100.0  # several organs, all perfect


def test_t1dual_uses_in_phase_prediction(converted, tmp_path):
    _, conv = converted
    preds = _predictions_from_labels(conv, tmp_path / "preds", saveimage_layout=False)
    out_phase = preds / "mr_1_t1dual_out.nii.gz"
    img = nib.load(out_phase)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), out_phase)  # an empty out-phase prediction
    out = tmp_path / "sub"
    assert main(["export-submission", str(preds), str(conv / "datalist.json"), str(out), "--section", "training"]) == 0
    stack = np.stack([_read_png(p) for p in list_slices(out / "MR/1/T1DUAL/Results", ".png")])
    assert stack.any()  # came from the in-phase prediction
    # without an in-phase prediction the out-phase one is used
    (preds / "mr_1_t1dual_in.nii.gz").unlink()
    args = ["export-submission", str(preds), str(conv / "datalist.json"), str(out), "--section", "training"]
    assert main([*args, "--overwrite"]) == 0
    stack = np.stack([_read_png(p) for p in list_slices(out / "MR/1/T1DUAL/Results", ".png")])
    assert not stack.any()


@pytest.mark.parametrize("problem", ["missing", "shape", "affine", "values", "stale", "no_entries"])
def test_bad_input_one_line_exit_2(converted, tmp_path, capsys, problem):
    _, conv = converted
    preds = _predictions_from_labels(conv, tmp_path / "preds", saveimage_layout=False)
    out = tmp_path / "sub"
    section = "training"
    ct = preds / "ct_1.nii.gz"
    img = nib.load(ct)
    data = np.asarray(img.dataobj)
    expect = {
        "missing": "no prediction for case 'ct_1'",
        "shape": "prediction shape",
        "affine": "prediction affine differs",
        "values": "expected labels 0..4",
        "stale": "--overwrite",
        "no_entries": "no entries",
    }[problem]
    if problem == "missing":
        ct.unlink()
    elif problem == "shape":
        nib.save(nib.Nifti1Image(data[:, :, :-1], img.affine), ct)
    elif problem == "affine":
        nib.save(nib.Nifti1Image(data, img.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])), ct)
    elif problem == "values":
        nib.save(nib.Nifti1Image((data * 7).astype(np.uint8), img.affine), ct)
    elif problem == "stale":
        (out / "CT/1/Results").mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(out / "CT/1/Results/img999.png")
    elif problem == "no_entries":
        section = "test"  # the phantom has no test cases
    capsys.readouterr()
    rc = main(["export-submission", str(preds), str(conv / "datalist.json"), str(out), "--section", section])
    err = capsys.readouterr().err
    assert rc == 2
    assert expect in err
    # one error line (a progress bar may precede it on stderr), no traceback
    assert [ln for ln in err.splitlines() if "error" in ln] == [err.strip().splitlines()[-1]]
    assert err.strip().splitlines()[-1].startswith("scse-monai export-submission: error:") and "Traceback" not in err


def test_interrupted_export_leaves_no_partial_stack(tmp_path, monkeypatch) -> None:
    """A stack cut short (here: the 3rd PNG fails) leaves no Results folder and no staging folder behind."""
    import nibabel as nib
    import numpy as np
    from PIL import Image

    from scse_monai.apps.chaos import export

    labels = np.zeros((8, 6, 5), np.uint8)
    labels[2:5, 1:4, 1:4] = 1
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(tmp_path / "pred.nii.gz"))
    entry = {"case": "ct_1", "label": "pred.nii.gz"}  # its own reference grid
    datalist = tmp_path / "datalist.json"
    calls = {"n": 0}
    real_save = Image.Image.save

    def failing_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    folder = tmp_path / "out" / "CT" / "1" / "Results"
    with pytest.raises(OSError, match="disk full"):
        export.export_case(tmp_path / "pred.nii.gz", entry, datalist, folder)
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert export.export_case(tmp_path / "pred.nii.gz", entry, datalist, folder) == 5
    assert sorted(p.name for p in folder.iterdir()) == [f"img{k:03d}.png" for k in range(5)]
