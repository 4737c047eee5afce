"""A synthetic data set in the exact CHAOS layout: the project's embedded default data for the demo and the tests.

``scse-monai phantom OUT_DIR [--ct N] [--mr N] [--seed S] [--size N] [--test-cases N]`` writes
``OUT_DIR/Train_Sets/{CT,MR}/<id>/...`` (and ``Test_Sets`` without Ground with ``--test-cases``) following the
conventions of the real archives (Kavur et al. 2021; ``shared/reference/CHAOS.md``):

- CT: ``DICOM_anon/i0000,0000b.dcm`` ..., implicit VR little endian, unsigned 16-bit stored values with
  RescaleSlope 1 / RescaleIntercept -1000, ImagePositionPatient z *decreasing* in name order (as in the real CT
  sample) with SliceThickness different from the position step (a trap for converters), InstanceNumber and
  SliceLocation increasing; ``Ground/liver_GT_000.png`` ... 1-bit PNGs (liver only, as CHAOS CT).
- MR: ``T1DUAL/DICOM_anon/{InPhase,OutPhase}/IMG-<series>-<image>.dcm`` (in-phase EchoTime 4.6 ms, out-phase
  2.3 ms), ``T1DUAL/Ground`` one 8-bit stack for both phases, ``T2SPIR/DICOM_anon`` (EchoTime 70 ms) and
  ``T2SPIR/Ground`` with the same base names; grey levels 63/126/189/252 with a few off-nominal values inside the
  organisers' tolerance ranges; positions increasing in name order.

Default sizes are small for fast tests and CPU training: CT 128 x 128 x 40 (2.96875 mm pixels, 5 mm steps), MR
96 x 96 x 26 (3.75 mm, 8 mm steps). ``size=512`` gives real-size CT (512 x 512 x 100, 0.7421875 mm, 2 mm steps) and
256 x 256 MR. The anatomy (:mod:`.phantom_shapes`) lives in physical space, so a seed gives the same abdomen at any
size. CT intensities: liver and spleen within ~20 HU of each other (position must matter), kidneys brighter, noise
sigma 12-22 HU. MR: water/fat signal model (out-phase = |water - fat|, which darkens fat-water boundaries), T2 with
spleen and kidneys brighter than liver, a smooth multiplicative bias field and Rician noise.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scse_monai.apps.chaos.labels import GREY_RANGES, labels_to_grey
from scse_monai.apps.chaos.phantom_shapes import SmoothField, Tissue, make_anatomy
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_path

__all__ = [
    "save_dicom_file",
    "Grid",
    "PhantomSeries",
    "PhantomCase",
    "simulate_case",
    "phantom_grids",
    "make_phantom",
    "phantom_ids",
    "add_arguments",
    "run",
]

# The real archives' ids (CHAOS.md section 3), used in order so phantom cases look like CHAOS ones.
_IDS = {
    ("ct", "train"): [1, 2, 5, 6, 8, 10, 14, 16, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30],
    ("ct", "test"): [3, 4, 7, 9, 11, 12, 13, 15, 17, 20, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40],
    ("mr", "train"): [1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22, 31, 32, 33, 34, 36, 37, 38, 39],
    ("mr", "test"): [4, 6, 7, 9, 11, 12, 14, 16, 17, 18, 23, 24, 25, 26, 27, 28, 29, 30, 35, 40],
}
ECHO_TIMES = {"t1dual_in": 4.6, "t1dual_out": 2.3, "t2spir": 70.0}  # ms, 1.5 T
_CT_FOV, _MR_FOV = 380.0, 360.0  # mm; chosen so 128/256/512 (CT) and 96/256 (MR) give float32-exact spacings


def phantom_ids(kind: str, split: str, n: int) -> list[str]:
    """CHAOS-like case ids: the real archive's ids first, then 101, 102, ..."""
    ids = _IDS[(kind, split)]
    return [str(ids[i]) if i < len(ids) else str(100 + i - len(ids) + 1) for i in range(n)]


@dataclass(frozen=True)
class Grid:
    """Axis-aligned slice grid (ImageOrientationPatient 1,0,0,0,1,0), slices in file-name order.

    Attributes:
        columns: DICOM Columns (array axis 0).
        rows: DICOM Rows (array axis 1).
        slices: number of files.
        spacing: pixel size in mm (square pixels).
        ipp_first: ImagePositionPatient (LPS mm) of the first file.
        step: signed z step between consecutive files (mm).
        thickness: SliceThickness written to the headers (deliberately not ``|step|``).
    """

    columns: int
    rows: int
    slices: int
    spacing: float
    ipp_first: tuple[float, float, float]
    step: float
    thickness: float

    @property
    def xs(self) -> np.ndarray:
        """X (LPS) of the column centres."""
        return self.ipp_first[0] + self.spacing * np.arange(self.columns)

    @property
    def ys(self) -> np.ndarray:
        """Y (LPS) of the row centres."""
        return self.ipp_first[1] + self.spacing * np.arange(self.rows)

    @property
    def zs(self) -> np.ndarray:
        """Z (LPS) of the slices in file order."""
        return self.ipp_first[2] + self.step * np.arange(self.slices)


@dataclass
class PhantomSeries:
    """One written series: stored DICOM values and the true labels on its grid, all (x, y, z).

    Attributes:
        grid: slice grid.
        stored: ``uint16`` stored values (CT HU = stored - 1000).
        labels: ``uint8`` Ground labels as written (CT: liver only).
        organs: ``uint8`` all four organs (for CT too, where the Ground has the liver only).
        echo_time: EchoTime in ms (MR).
    """

    grid: Grid
    stored: np.ndarray
    labels: np.ndarray
    organs: np.ndarray
    echo_time: float | None = None


@dataclass
class PhantomCase:
    """A simulated patient: ``series`` keys are ``"ct"`` or ``"t1dual_in"``, ``"t1dual_out"``, ``"t2spir"``."""

    kind: str
    chaos_id: str
    split: str
    series: dict[str, PhantomSeries] = field(default_factory=dict)


def _sizes(size: int | None) -> tuple[int, int]:
    if size is None:
        return 128, 96
    if size < 32:
        raise InvalidInputError(f"--size {size}; expected an in-plane CT size of at least 32 pixels")
    return size, max(32, size // 2)


def _ct_image(rng: np.random.Generator, tissue: np.ndarray, texture: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    liver = rng.uniform(95, 130)  # portal venous phase
    cortex = rng.uniform(170, 220)
    hu = np.zeros(len(Tissue), dtype=np.float32)
    hu[[t.value for t in Tissue]] = [
        -1000, -100 + rng.uniform(-10, 10), 30, 50, liver, liver + 45, liver + rng.uniform(-8, 15),
        cortex, cortex - 30, rng.uniform(150, 200), rng.uniform(125, 160), rng.uniform(550, 900),
        rng.uniform(180, 280), 10, -950, 80,
    ]  # fmt: skip
    img = hu[tissue] + 8.0 * texture * (tissue != Tissue.AIR)
    img = gaussian_filter(img, sigma=(0.6, 0.6, 0.3))  # partial volume
    img += rng.normal(0, rng.uniform(12, 22), size=img.shape).astype(np.float32)
    return np.clip(np.rint(img + 1000), 0, 4095).astype(np.uint16)  # unsigned storage, intercept -1000


def _mr_images(
    rng: np.random.Generator, tissue: np.ndarray, texture: np.ndarray, bias: np.ndarray, t1: bool
) -> dict[str, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    gain = rng.uniform(0.8, 1.2)
    # Per tissue: T1 water, T1 fat, T2-SPIR (fat suppressed) signals, arbitrary units (12-bit range).
    table = np.zeros((len(Tissue), 3), dtype=np.float32)
    table[[t.value for t in Tissue]] = [
        [0, 0, 0], [60, 840, 70], [300, 40, 500], [400, 10, 170], [600, 30, 240], [250, 0, 320],
        [450, 0, 600], [520, 0, 700], [380, 0, 820], [150, 0, 90], [200, 0, 260], [40, 0, 30],
        [250, 400, 150], [120, 0, 1200], [0, 0, 0], [350, 0, 500],
    ]  # fmt: skip
    table *= rng.uniform(0.9, 1.1, size=table.shape).astype(np.float32)
    sigma = rng.uniform(8, 16)

    def finish(signal: np.ndarray) -> np.ndarray:
        noisy = np.hypot(signal * bias * gain + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, signal.shape))
        return np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)

    tex = 1 + 0.06 * texture
    if t1:
        water = gaussian_filter(table[tissue, 0] * tex, sigma=(0.7, 0.7, 0.3))
        fat = gaussian_filter(table[tissue, 1], sigma=(0.7, 0.7, 0.3))
        return {"t1dual_in": finish(water + fat), "t1dual_out": finish(np.abs(water - fat))}
    return {"t2spir": finish(gaussian_filter(table[tissue, 2] * tex, sigma=(0.7, 0.7, 0.3)))}


def phantom_grids(
    kind: str, index: int, seed: int = 0, size: int | None = None, split: str = "train"
) -> tuple[dict[str, Grid], tuple[np.random.SeedSequence, np.random.Generator, np.random.Generator]]:
    """The slice grids of one phantom patient (``{"ct": ...}`` or ``{"t1dual": ..., "t2spir": ...}``), cheaply.

    Returns:
        ``(grids, (anatomy_seed, geometry_rng, image_rng))``; :func:`simulate_case` continues with the generators.
    """
    if kind not in ("ct", "mr") or split not in ("train", "test"):
        raise InvalidInputError(f"kind {kind!r}, split {split!r}; expected 'ct'/'mr' and 'train'/'test'")
    ct_size, mr_size = _sizes(size)
    seq = np.random.SeedSequence([seed, ("ct", "mr").index(kind), index, ("train", "test").index(split)])
    anatomy_seed, geometry_seed, image_seed = seq.spawn(3)
    geo = np.random.default_rng(geometry_seed)
    rng = np.random.default_rng(image_seed)
    if kind == "ct":
        spacing = _CT_FOV / ct_size
        step = float(np.clip(np.round(2 * 5.0 * 128 / ct_size) / 2, 2.0, 5.0))
        n = int(round(200 / step))
        z_top = 1500.5 + float(geo.integers(-40, 40))
        grids = {"ct": Grid(ct_size, ct_size, n, spacing, (-190.0, -190.0 + float(geo.integers(-15, 15)), z_top),
                            -step, step * 1.6)}
    else:
        spacing = _MR_FOV / mr_size
        z0 = -100.0 + float(geo.integers(-10, 10))
        y0 = -180.0 + float(geo.integers(-10, 10))
        t1 = Grid(mr_size, mr_size, 26, spacing, (-180.0, y0, z0), 8.0, 7.0)
        t2 = Grid(mr_size, mr_size, 26, spacing, (-180.0, y0, z0 + float(geo.integers(-4, 5))), 8.0, 7.0)
        grids = {"t1dual": t1, "t2spir": t2}
    return grids, (anatomy_seed, geo, rng)


def simulate_case(kind: str, index: int, seed: int = 0, size: int | None = None, split: str = "train") -> PhantomCase:
    """Simulate one phantom patient (deterministic in ``kind``, ``index``, ``seed``, ``size`` and ``split``).

    Args:
        kind: ``"ct"`` or ``"mr"``.
        index: patient number within its kind and split (0-based); the CHAOS id is ``phantom_ids(...)[index]``.
        seed: data set seed.
        size: in-plane CT size (MR: half of it); ``None`` for the defaults (CT 128, MR 96).
        split: ``"train"`` or ``"test"``.
    """
    grids, seq = phantom_grids(kind, index, seed, size, split)
    anatomy_seed, geo, rng = seq
    case = PhantomCase(kind=kind, chaos_id=phantom_ids(kind, split, index + 1)[index], split=split)
    any_grid = next(iter(grids.values()))
    zmid = any_grid.ipp_first[2] + any_grid.step * (any_grid.slices - 1) / 2
    y_mid = any_grid.ipp_first[1] + any_grid.spacing * any_grid.rows / 2
    center = (float(geo.uniform(-10, 10)), y_mid + float(geo.uniform(-5, 10)), zmid)
    for name, grid in grids.items():
        # A fresh generator per grid: the same patient whatever the grid (T1DUAL and T2SPIR share the anatomy).
        anatomy = make_anatomy(np.random.default_rng(anatomy_seed), grid.xs, grid.ys, grid.zs, center)
        if kind == "ct":
            labels = (anatomy.labels == 1).astype(np.uint8)  # CHAOS CT Ground marks the liver only
            stored = _ct_image(rng, anatomy.tissue, anatomy.texture)
            case.series["ct"] = PhantomSeries(grid, stored, labels, anatomy.labels)
            continue
        bias_field = SmoothField(rng, (250, 500), 4)
        x, y, z = grid.xs[:, None, None], grid.ys[None, :, None], grid.zs[None, None, :]
        bias = np.exp(0.25 * bias_field(x, y, z)).astype(np.float32)
        images = _mr_images(rng, anatomy.tissue, anatomy.texture, bias, t1=name == "t1dual")
        for series, stored in images.items():
            case.series[series] = PhantomSeries(grid, stored, anatomy.labels, anatomy.labels, ECHO_TIMES[series])
    return case


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["scse_monai phantom", *map(str, parts)])


def save_dicom_file(ds: Any, path: str | os.PathLike) -> None:
    """``ds.save_as(path)`` as a standard DICOM file (preamble + file meta) with pydicom 3.x and 2.4.

    pydicom 3 asks for it with ``enforce_file_format=True``, pydicom 2.4 (which MONAI Label 0.8.5's server packages
    pin) with ``write_like_original=False``.
    """
    import pydicom

    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, write_like_original=False)


def _write_dicom(path: Path, pixels: np.ndarray, tags: dict) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian, MRImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if tags["Modality"] == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = tags["SOPInstanceUID"]
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    with atomic_path(path) as tmp:
        save_dicom_file(ds, tmp)


def _write_png(path: Path, array: np.ndarray, mode: str) -> None:
    from PIL import Image

    img = Image.fromarray(array.astype(bool)) if mode == "1" else Image.fromarray(array.astype(np.uint8), mode="L")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _off_nominal_grey(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Grey levels 63/126/189/252 with ~0.5% of organ pixels at other values inside the organisers' ranges."""
    grey = labels_to_grey(labels)
    organ = np.flatnonzero(labels)
    chosen = rng.choice(organ, size=max(1, organ.size // 200), replace=False) if organ.size else organ
    for label, (low, high) in GREY_RANGES.items():
        idx = chosen[labels.flat[chosen] == label]
        grey.flat[idx] = rng.integers(low + 1, high + 1, size=idx.size)
    return grey


def _series_tags(case: PhantomCase, name: str, series: PhantomSeries, seed: int) -> dict:
    g = series.grid
    tags = {
        "Modality": "CT" if case.kind == "ct" else "MR",
        "PatientName": f"CHAOS^{case.kind.upper()}_PHANTOM_{case.chaos_id}",
        "PatientID": "",
        "StudyInstanceUID": _uid(seed, case.kind, case.split, case.chaos_id, "study"),
        "SeriesInstanceUID": _uid(seed, case.kind, case.split, case.chaos_id, name.split("_")[0], "series"),
        "FrameOfReferenceUID": _uid(seed, case.kind, case.split, case.chaos_id, "frame"),
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
        "PixelSpacing": [g.spacing, g.spacing],
        "SliceThickness": g.thickness,
        "RescaleSlope": 1,
        "RescaleIntercept": -1000 if case.kind == "ct" else 0,
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    }
    if case.kind == "ct":
        tags.update(KVP=120, PatientPosition="FFS", WindowCenter=50, WindowWidth=400, SeriesNumber=4)
    else:
        tags.update(
            EchoTime=series.echo_time,
            RepetitionTime=1600.0 if name == "t2spir" else 150.0,
            MagneticFieldStrength=1.5,
            PatientPosition="HFS",
            SeriesNumber=2 if name == "t2spir" else 4,
            SeriesDescription="T2SPIR" if name == "t2spir" else "T1DUAL",
        )
    return tags


def _write_case(root: Path, case: PhantomCase, seed: int) -> None:
    set_dir = root / ("Train_Sets" if case.split == "train" else "Test_Sets")
    train = case.split == "train"
    grey_rng = np.random.default_rng([seed, 7, int(case.chaos_id), ("ct", "mr").index(case.kind)])
    for name, series in case.series.items():
        g = series.grid
        if case.kind == "ct":
            dicom_dir = set_dir / "CT" / case.chaos_id / "DICOM_anon"
            ground_dir = dicom_dir.parent / "Ground"
            names = [f"i{k:04d},0000b" for k in range(g.slices)]
            ground_names = [f"liver_GT_{k:03d}" for k in range(g.slices)]
        else:
            seq = "T2SPIR" if name == "t2spir" else "T1DUAL"
            base = set_dir / "MR" / case.chaos_id / seq
            phase = {"t1dual_in": "InPhase", "t1dual_out": "OutPhase"}.get(name)
            dicom_dir = base / "DICOM_anon" / phase if phase else base / "DICOM_anon"
            ground_dir = base / "Ground"
            series_no = 2 if name == "t2spir" else 4
            # T1DUAL echoes interleave in one acquisition: out-phase odd, in-phase even image numbers.
            first = 2 if name == "t1dual_in" else 1
            step = 1 if name == "t2spir" else 2
            names = [f"IMG-{series_no:04d}-{first + step * k:05d}" for k in range(g.slices)]
            ground_names = [f"IMG-{series_no:04d}-{1 + step * k:05d}" for k in range(g.slices)]
        tags = _series_tags(case, name, series, seed)
        for k in range(g.slices):
            tags.update(
                SOPInstanceUID=_uid(seed, case.kind, case.split, case.chaos_id, name, k),
                InstanceNumber=k + 1,
                ImagePositionPatient=[g.ipp_first[0], g.ipp_first[1], g.ipp_first[2] + g.step * k],
                SliceLocation=round(61.0 + abs(g.step) * k, 4),
            )
            _write_dicom(dicom_dir / f"{names[k]}.dcm", series.stored[:, :, k].T, tags)
        if not train or name == "t1dual_out":  # T1DUAL: one Ground stack for both phases
            continue
        if case.kind == "ct":
            for k in range(g.slices):
                _write_png(ground_dir / f"{ground_names[k]}.png", series.labels[:, :, k].T, "1")
        else:
            grey = _off_nominal_grey(grey_rng, series.labels)
            for k in range(g.slices):
                _write_png(ground_dir / f"{ground_names[k]}.png", grey[:, :, k].T, "L")


def make_phantom(
    out_dir: str | os.PathLike,
    n_ct: int = 2,
    n_mr: int = 2,
    seed: int = 0,
    size: int | None = None,
    test_cases: int = 0,
    progress: bool = False,
) -> Path:
    """Write a synthetic CHAOS data set; returns the CHAOS root (``out_dir``, holding ``Train_Sets/``).

    Args:
        out_dir: output folder; ``Train_Sets/`` (and ``Test_Sets/`` if ``test_cases``) are written inside.
        n_ct: number of CT training patients.
        n_mr: number of MR training patients (each with T1DUAL in/out phase and T2SPIR).
        seed: data set seed; the same arguments always give the same files.
        size: in-plane CT size (MR gets half); ``None``: CT 128, MR 96.
        test_cases: number of CT and of MR patients written to ``Test_Sets/`` (no Ground).
        progress: show a tqdm bar over patients.

    Raises:
        InvalidInputError: for negative counts or a size below 32.
    """
    from tqdm.auto import tqdm

    if min(n_ct, n_mr, test_cases) < 0:
        raise InvalidInputError(f"case counts ct={n_ct}, mr={n_mr}, test={test_cases}; expected non-negative numbers")
    _sizes(size)
    root = Path(out_dir)
    jobs = [(kind, i, split) for split, counts in (("train", (n_ct, n_mr)), ("test", (test_cases, test_cases)))
            for kind, n in zip(("ct", "mr"), counts, strict=True) for i in range(n)]
    for kind, i, split in tqdm(jobs, desc="phantom", unit="patient", disable=not progress):
        _write_case(root, simulate_case(kind, i, seed, size, split), seed)
    return root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai phantom``."""
    parser.add_argument("out_dir", type=Path, help="output folder (becomes a CHAOS root)")
    parser.add_argument("--ct", type=int, default=2, help="CT training patients (default 2)")
    parser.add_argument("--mr", type=int, default=2, help="MR training patients (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument("--size", type=int, default=None, help="in-plane CT size, e.g. 512 (MR: half); default 128/96")
    parser.add_argument("--test-cases", type=int, default=0, help="CT and MR patients in Test_Sets/ (default 0)")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai phantom``."""
    root = make_phantom(args.out_dir, args.ct, args.mr, args.seed, args.size, args.test_cases, progress=True)
    print(f"phantom CHAOS root: {root}")
    return 0
