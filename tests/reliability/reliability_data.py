"""Builders of tiny valid CHAOS-layout cases (DICOM + Ground PNG) that the reliability tests then break."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from scse_monai.apps.chaos.phantom import save_dicom_file

__all__ = [
    "STATS",
    "dicom_dataset",
    "write_dicom",
    "write_png",
    "make_case_tree",
    "ct_dirs",
    "mr_dirs",
    "first_exception_of",
    "exception_chain",
    "inference_workflow",
    "read_dataset",
    "BUNDLE_CONFIGS",
]

#: counters shared by the reliability tests and printed in the terminal summary (see conftest.py beside this file).
STATS: Counter = Counter()

ROWS, COLS = 12, 10  # deliberately not square: a rows/columns mix-up shows


def dicom_dataset(
    pixels: np.ndarray,
    ipp: tuple[float, float, float],
    modality: str = "CT",
    spacing: tuple[float, float] = (2.0, 1.5),
    thickness: float = 3.0,
    echo_time: float | None = None,
) -> Dataset:
    """A minimal but complete single-frame DICOM slice; ``pixels`` is ``(rows, columns)`` stored ``uint16``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = list(ipp)
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = thickness
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1000 if modality == "CT" else 0
    if echo_time is not None:
        ds.EchoTime = echo_time
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_dicom(path: Path, ds: Dataset) -> Path:
    """Save ``ds`` as a DICOM file (with preamble and file meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dicom_file(ds, path)
    return path


def write_png(path: Path, array: np.ndarray, mode: str = "1") -> Path:
    """Save ``(rows, columns)`` ``array`` as a PNG of PIL ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "1":
        img = Image.fromarray(np.asarray(array).astype(bool))
    else:
        img = Image.fromarray(np.asarray(array).astype(np.uint8), mode="L")
        if mode != "L":
            img = img.convert(mode)
    img.save(path, format="PNG")
    return path


def ct_dirs(root: Path, case_id: str = "1") -> tuple[Path, Path]:
    """``(DICOM_anon, Ground)`` of a CT training case."""
    base = root / "Train_Sets" / "CT" / case_id
    return base / "DICOM_anon", base / "Ground"


def mr_dirs(root: Path, case_id: str = "1") -> tuple[Path, Path]:
    """``(DICOM_anon, Ground)`` of an MR T2SPIR training case."""
    base = root / "Train_Sets" / "MR" / case_id / "T2SPIR"
    return base / "DICOM_anon", base / "Ground"


def make_case_tree(
    root: Path, kind: str = "ct", n: int = 4, case_id: str = "1", seed: int = 0, ground: bool = True
) -> tuple[Path, Path]:
    """Write one valid CT (or MR T2SPIR) training case of ``n`` slices under the CHAOS root ``root``.

    Returns:
        ``(dicom_dir, ground_dir)``. Slices are named ``s1.dcm .. s<n>.dcm`` / ``g1.png ..`` (natural order), with
        positions 5 mm apart along z. CT Ground is 1-bit (liver disc), MR Ground 8-bit grey levels 63/126.
    """
    rng = np.random.default_rng(seed)
    dicom_dir, ground_dir = ct_dirs(root, case_id) if kind == "ct" else mr_dirs(root, case_id)
    modality = "CT" if kind == "ct" else "MR"
    for k in range(n):
        pixels = rng.integers(0, 2000, size=(ROWS, COLS)).astype(np.uint16)
        ds = dicom_dataset(pixels, (-10.0, -12.0, 5.0 * k), modality, echo_time=None if kind == "ct" else 70.0)
        write_dicom(dicom_dir / f"s{k + 1}.dcm", ds)
        if ground:
            mask = np.zeros((ROWS, COLS), dtype=np.uint8)
            mask[3:8, 2:6] = 1
            if kind == "ct":
                write_png(ground_dir / f"g{k + 1}.png", mask, "1")
            else:
                grey = mask * 63
                grey[9:11, 6:9] = 126
                write_png(ground_dir / f"g{k + 1}.png", grey, "L")
    return dicom_dir, ground_dir


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during (``__cause__``/``__context__``), outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def first_exception_of(exc: BaseException | None, kind: type) -> BaseException | None:
    """The first exception of type ``kind`` in ``exc``'s chain, or ``None``."""
    return next((e for e in exception_chain(exc) if isinstance(e, kind)), None)


def read_dataset(path: str | os.PathLike) -> Dataset:
    """``pydicom.dcmread`` (for tests that edit a written slice)."""
    return pydicom.dcmread(path)


BUNDLE_CONFIGS = Path(__file__).resolve().parents[2] / "bundle" / "configs"


def inference_workflow(input_path: str | os.PathLike, output_dir: str | os.PathLike, bundle_root: str | os.PathLike,
                       load_pretrain: bool = False, **overrides):
    """The bundle's ``inference.json`` as a :class:`monai.bundle.ConfigWorkflow`, shrunk like the bundle tests."""
    from monai.bundle import ConfigWorkflow

    from ..conftest import TINY_BUNDLE_OVERRIDES

    tiny = {k: v for k, v in TINY_BUNDLE_OVERRIDES.items()
            if k.startswith("network_def") or k in ("pixdim", "roi_size")}
    return ConfigWorkflow(
        config_file=str(BUNDLE_CONFIGS / "inference.json"),
        meta_file=str(BUNDLE_CONFIGS / "metadata.json"),
        logging_file=str(BUNDLE_CONFIGS / "logging.conf"),
        workflow_type="infer",
        bundle_root=str(bundle_root),
        input=str(input_path),
        output_dir=str(output_dir),
        load_pretrain=load_pretrain,
        **{**tiny, **overrides},
    )
