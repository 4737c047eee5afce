"""Corpus, inference inputs: the bundle's ``inference.json`` on inputs checked like conversion inputs.

Each case runs the real bundle workflow (tiny network, no weights unless the case is about them) under an alarm.
The outcome must be an :class:`~scse_monai.errors.InvalidInputError` naming the file somewhere in the exception
chain (MONAI/ignite wrap errors), before any prediction is written, or a correct prediction.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid

from scse_monai.errors import InvalidInputError

from .corpus import Hang, alarm, record
from .reliability_data import first_exception_of, inference_workflow, make_case_tree, read_dataset, write_dicom

CATEGORY = "inference inputs"


def _volume(path: Path, data: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.random.default_rng(0).normal(size=(16, 16, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([6.0, 6.0, 5.0, 1.0])), path)
    return path


def _truncated_gz(folder: Path) -> tuple[Path, str]:
    p = _volume(folder / "truncated.nii.gz")
    p.write_bytes(p.read_bytes()[:-40])
    return folder, "truncated.nii.gz"


def _rgb(folder: Path) -> tuple[Path, str]:
    rgb = np.zeros((16, 16, 3), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    img = nib.Nifti1Image(rgb, np.eye(4))
    nib.save(img, folder / "rgb.nii.gz")
    return folder, "rgb.nii.gz"


def _huge_header(folder: Path, gz: bool) -> tuple[Path, str]:
    name = "huge.nii.gz" if gz else "huge.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((32000, 32000, 12))
    hdr.set_data_dtype(np.float32)
    hdr.set_data_offset(352)
    blob = hdr.binaryblock + b"\0" * 4 + os.urandom(1024)
    (folder / name).write_bytes(gzip.compress(blob) if gz else blob)
    return folder, name


def _four_channels(folder: Path) -> tuple[Path, str]:
    return _volume(folder / "four.nii.gz", np.zeros((16, 16, 3, 4), np.float32)).parent, "four.nii.gz"


def _complex(folder: Path) -> tuple[Path, str]:
    return _volume(folder / "cplx.nii.gz", np.zeros((16, 16, 3), np.complex64)).parent, "cplx.nii.gz"


def _dicom(folder: Path) -> Path:
    dicom_dir, _ = make_case_tree(folder / "raw", n=4, ground=False)
    target = folder / "series"
    dicom_dir.rename(target)
    return target


def _edit(path: Path, **tags) -> None:
    ds = read_dataset(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    write_dicom(path, ds)


def _dicom_two_sizes(folder: Path) -> tuple[Path, str]:
    series = _dicom(folder)
    ds = read_dataset(series / "s3.dcm")
    ds.Rows, ds.Columns = 6, 5
    ds.PixelData = np.zeros((6, 5), "<u2").tobytes()
    write_dicom(series / "s3.dcm", ds)
    return series, "s3.dcm"


def _dicom_two_series(folder: Path) -> tuple[Path, str]:
    series = _dicom(folder)
    uid = generate_uid()
    for p in sorted(series.glob("*.dcm")):
        _edit(p, SeriesInstanceUID=uid if p.name != "s4.dcm" else generate_uid())
    return series, "s4.dcm"


def _dicom_fifo(folder: Path) -> tuple[Path, str]:
    series = _dicom(folder)
    os.mkfifo(series / "x.dcm")
    return series, "x.dcm"


def _dicom_huge_declared(folder: Path) -> tuple[Path, str]:
    series = _dicom(folder)
    for p in series.glob("*.dcm"):
        _edit(p, Rows=65535, Columns=65535)
    return series, "s1.dcm"


def _name_collision(folder: Path) -> tuple[Path, str]:
    _volume(folder / "scan.nii")
    _volume(folder / "scan.nii.gz")
    return folder, "would both be saved as scan_seg"


def _nifti_fifo(folder: Path) -> tuple[Path, str]:
    os.mkfifo(folder / "pipe.nii.gz")
    return folder / "pipe.nii.gz", "pipe.nii.gz"


BAD: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "nifti_truncated_gz": _truncated_gz,
    "nifti_rgb": _rgb,
    "nifti_header_32000x32000x12_with_1kb": lambda f: _huge_header(f, gz=False),
    "nifti_gz_header_32000x32000x12_with_1kb": lambda f: _huge_header(f, gz=True),
    "nifti_four_channels": _four_channels,
    "nifti_complex": _complex,
    "nifti_fifo": _nifti_fifo,
    "dicom_two_sizes": _dicom_two_sizes,
    "dicom_two_series": _dicom_two_series,
    "dicom_fifo_named_dcm": _dicom_fifo,
    "dicom_declared_65535x65535": _dicom_huge_declared,
    "output_name_collision_nii_and_nii_gz": _name_collision,
}


def _run(input_path: Path, out: Path, bundle_root: Path, **overrides) -> Exception | None:
    try:
        with alarm(60):
            workflow = inference_workflow(input_path, out, bundle_root, **overrides)
            workflow.initialize()
            workflow.run()
    except Exception as e:  # noqa: BLE001 - classified by the caller
        return e
    return None


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inference_input_is_refused_before_the_network_runs(name: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    input_path, culprit = BAD[name](folder)
    out = tmp_path / "pred"
    error = _run(input_path, out, tmp_path)
    found = first_exception_of(error, InvalidInputError) if error is not None else None
    if isinstance(error, Hang) or first_exception_of(error, Hang) is not None:
        outcome = "hangs"
    elif error is None:
        outcome = "silent wrong"
    elif found is None or culprit not in str(found) or "\n" in str(found).strip():
        outcome = "escaped"
    elif out.exists() and [p for p in out.rglob("*") if p.is_file()]:
        outcome = "silent wrong"
    else:
        outcome = "refused clearly"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", f"{outcome}: {type(error).__name__}: {error}"


def test_output_folder_inside_the_input_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _volume(folder / "scan.nii.gz")
    error = _run(folder, folder / "pred", tmp_path)
    found = first_exception_of(error, InvalidInputError) if error is not None else None
    ok = found is not None and "output lies inside the input" in str(found)
    record(CATEGORY, "refused clearly" if ok else "escaped" if error is not None else "silent wrong")
    assert ok, error


def test_dicom_series_without_instance_number_is_segmented(tmp_path: Path) -> None:
    """The corpus DICOMs carry no InstanceNumber: a valid series all the same, segmented on its own grid."""
    series = _dicom(tmp_path / "in")
    out = tmp_path / "pred"
    error = _run(series, out, tmp_path)
    preds = list(out.glob("*.nii.gz")) if out.exists() else []
    ok = error is None and len(preds) == 1 and nib.load(preds[0]).shape[:3] == (10, 12, 4)
    record(CATEGORY, "correct result" if ok else "escaped" if error is not None else "silent wrong")
    assert ok, (error, preds)


def test_half_written_model_is_refused_with_its_name(tmp_path: Path) -> None:
    import torch

    from scse_monai.networks.nets import SEUNet  # noqa: F401 - the bundle's network

    image = _volume(tmp_path / "in" / "scan.nii.gz")
    models = tmp_path / "models"
    models.mkdir()
    torch.save({"w": torch.zeros(1000)}, models / "model.pt")
    data = (models / "model.pt").read_bytes()
    (models / "model.pt").write_bytes(data[: len(data) // 2])
    error = _run(image, tmp_path / "pred", tmp_path, load_pretrain=True)
    text = " | ".join(str(e) for e in _chain(error))
    ok = error is not None and "model.pt" in text and not isinstance(error, Hang)
    record(CATEGORY, "refused clearly" if ok else "escaped" if error is not None else "silent wrong")
    assert ok, text


def _chain(error: BaseException | None) -> list[BaseException]:
    from .reliability_data import exception_chain

    return exception_chain(error)
