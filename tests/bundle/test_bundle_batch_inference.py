"""One command segments a whole CHAOS tree (issue 26): the bundle CLI on a phantom tree, NIfTI and DICOM SEG output.

`python -m monai.bundle run --config_file bundle/configs/inference.json --input <tree>` in a subprocess, with a tiny
network trained once for the module. The DICOM SEG test needs the ``dicom`` extra (highdicom, pydicom 3), which
cannot share an environment with the ``label`` extra: CI runs it in its own environment (``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

from scse_monai.apps.chaos.convert import convert_chaos
from scse_monai.apps.chaos.discover import discover_cases
from scse_monai.apps.chaos.export import export_submission
from scse_monai.apps.chaos.phantom import make_phantom
from scse_monai.data.dicom import read_dicom_series

from ..conftest import BUNDLE, REPO, TINY_BUNDLE_OVERRIDES

CONFIGS = BUNDLE / "configs"
HAS_HIGHDICOM = importlib.util.find_spec("highdicom") is not None
SERIES = ["ct_1", "mr_1_t1dual_in", "mr_1_t1dual_out", "mr_1_t2spir"]


@pytest.fixture(scope="module")
def trained(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle root whose models/model.pt is a tiny network trained one epoch on the converted phantom."""
    root = tmp_path_factory.mktemp("batch_bundle")
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"), meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"), workflow_type="train", bundle_root=str(root),
        dataset_dir=str(phantom_data), **TINY_BUNDLE_OVERRIDES,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    assert (root / "models" / "model.pt").exists()
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CHAOS tree (CT 1; MR 1: T1-DUAL in and out phase, T2-SPIR) plus a NIfTI file and a broken series."""
    root = make_phantom(tmp_path_factory.mktemp("batch_tree") / "chaos", n_ct=1, n_mr=1, seed=5)
    ct = read_dicom_series(root / "Train_Sets" / "CT" / "1" / "DICOM_anon")
    (root / "extra").mkdir()
    nib.save(nib.Nifti1Image(ct.array[:48, :40, :6], ct.affine), str(root / "extra" / "scan.nii.gz"))
    (root / "broken_series").mkdir()
    (root / "broken_series" / "img0.dcm").write_bytes(b"not a DICOM file")
    return root


def _infer(bundle_root: Path, input_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    overrides = [a for k, v in TINY_BUNDLE_OVERRIDES.items() if k.startswith(("network_def", "pixdim", "roi_size"))
                 for a in (f"--{k}", json.dumps(v))]
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json"),
        "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
        "--bundle_root", str(bundle_root), "--input", str(input_path), "--output_dir", str(out), *overrides, *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_one_command_segments_a_tree_and_never_overwrites(trained: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    first = _infer(trained, tree, out)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-5000:]
    # every series, named as the converter names the cases (the same function), plus the NIfTI file by its stem
    assert sorted(c.case for c in discover_cases(tree)) == SERIES
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}_seg.nii.gz" for n in [*SERIES, "scan"])
    for case in discover_cases(tree):
        pred = nib.load(out / f"{case.case}_seg.nii.gz")
        assert pred.shape == read_dicom_series(case.dicom_dir, with_pixels=False).shape
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3, 4}
    # the broken series: one warning line, the others ran
    broken = [line for line in log.splitlines() if "broken_series" in line]
    assert len(broken) == 1 and "skipped input" in broken[0] and "img0.dcm" in broken[0], broken
    assert "[5/5]" in log  # ignite's progress bar counts the series

    # export-submission finds them by the converter's case names and maps them back to the CHAOS slice order
    report = convert_chaos(tree, tmp_path / "converted", folds=1, seed=0, progress=False)
    assert not report.failed, report.failed
    folders = export_submission(out, tmp_path / "converted" / "datalist.json", tmp_path / "submission", ("training",))
    assert sorted(f.relative_to(tmp_path / "submission").as_posix() for f in folders) == [
        "CT/1/Results", "MR/1/T1DUAL/Results", "MR/1/T2SPIR/Results"]

    before = _snapshot(out)
    second = _infer(trained, tree, out)  # same command again: refused before anything is written
    assert second.returncode != 0
    assert "5 prediction(s) exist already" in second.stderr + second.stdout
    assert "--overwrite true" in second.stderr + second.stdout
    assert _snapshot(out) == before

    (out / "mr_1_t2spir_seg.nii.gz").unlink()  # resume: only the missing prediction is written
    third = _infer(trained, tree, out, "--skip_existing", "true")
    assert third.returncode == 0, (third.stdout + third.stderr)[-5000:]
    after = _snapshot(out)
    assert sorted(after) == sorted(before)
    assert {k: v for k, v in after.items() if k != "mr_1_t2spir_seg.nii.gz"} == \
        {k: v for k, v in before.items() if k != "mr_1_t2spir_seg.nii.gz"}


@pytest.mark.skipif(not HAS_HIGHDICOM, reason="the dicom extra (highdicom, pydicom 3) is not installed")
def test_dicom_seg_output_matches_the_nifti_output(trained: Path, tree: Path, tmp_path: Path) -> None:
    import pydicom

    from scse_monai.data.dicom_seg import read_dicom_seg

    out = tmp_path / "pred"
    run = _infer(trained, tree / "Train_Sets", out, "--output_format", "both")
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}_seg{e}" for n in SERIES for e in (".dcm", ".nii.gz"))
    organs = 0
    for case in discover_cases(tree / "Train_Sets"):
        pred = nib.load(out / f"{case.case}_seg.nii.gz")
        series = read_dicom_series(case.dicom_dir, with_pixels=False)
        # the NIfTI prediction in the source's slice order (data contract: volume[:, :, k] == pixel_array_k.T)
        ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(pred.affine),
                                               nib.orientations.io_orientation(series.affine))
        expected = np.transpose(nib.orientations.apply_orientation(np.asarray(pred.dataobj), ornt), (2, 1, 0))
        seg_file = out / f"{case.case}_seg.dcm"
        assert np.array_equal(read_dicom_seg(seg_file, case.dicom_dir), expected), case.case
        organs += int(np.count_nonzero(expected))
        ds = pydicom.dcmread(str(seg_file), stop_before_pixels=True)
        assert ds.Modality == "SEG" and ds.ManufacturerModelName == "SEUNet"
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(
            str(series.files[0]), stop_before_pixels=True).SeriesInstanceUID
    assert organs > 0, "the tiny model predicted background everywhere: the comparison would be trivial"


@pytest.mark.skipif(HAS_HIGHDICOM, reason="highdicom is installed")
def test_dicom_seg_without_highdicom_names_the_extra(trained: Path, tree: Path, tmp_path: Path) -> None:
    run = _infer(trained, tree / "Train_Sets" / "CT", tmp_path / "pred", "--output_format", "dicom_seg")
    assert run.returncode != 0
    assert 'pip install "scse_monai[dicom]"' in run.stdout + run.stderr
    assert not (tmp_path / "pred").exists() or not any((tmp_path / "pred").iterdir())
