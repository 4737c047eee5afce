"""``scse-monai evaluate``: the official CHAOS metrics (DICE, RAVD, ASSD, MSSD) and scores of a segmentation.

Single case::

    scse-monai evaluate --ground G --pred P [--dicom D | --spacing SX SY SZ] [--json OUT.json] [--csv OUT.csv]

``G`` and ``P`` are each a NIfTI label file (labels 0..4) or a folder of CHAOS PNG slices (sorted by natural name
order; ``P`` may be numbered from 1 while ``G`` starts at 0, as in the official sample). With PNG inputs the voxel ->
mm geometry comes from the DICOM folder ``D`` exactly as the organisers compute it (first/last file in name order,
see :func:`scse_monai.metrics.chaos.chaos_dicom_geometry`), or from ``--spacing``; otherwise from the NIfTI affine
(ground's, else prediction's).

Organ mode (how PNG values become labels):

- CT (``D``'s Modality is CT, or without ``D`` a PNG ground holding only 0/1/255): liver only, as the official
  readers do it: the ground must be binary (else an error), and **any non-zero prediction voxel is liver** (the
  organisers' sample submission uses 63).
- otherwise: PNGs are mapped through the MR grey-level ranges (55, 70] -> liver, (110, 135] -> right kidney,
  (175, 200] -> left kidney, (240, 255] -> spleen; a 1-bit PNG prediction is liver. NIfTI files hold labels already.

Batch mode, over a converted ``datalist.json`` (entries with a ``"label"``) and a folder of NIfTI predictions found by
case name (``<case>.nii.gz``, ``<case>_seg.nii.gz`` or MONAI SaveImage's ``<case>/<case>_seg.nii.gz``)::

    scse-monai evaluate --datalist DATALIST --pred PRED_DIR [--fold K ...] [--json OUT.json] [--csv OUT.csv]

Output: a table on stdout; ``--json`` writes ``{"<organ>": {dice, ravd, assd, mssd, score_dice, score_ravd,
score_assd, score_mssd, score}, ..., "mean": {...}}`` (RAVD in percent, distances in mm) for one case and
``{"cases": {"<case>": {...}}, "mean": {...}}`` in batch mode; ``--csv`` one row per case and organ, the case means,
and the means over cases (see :func:`scse_monai.metrics.chaos.summarise_cases`). Organs absent from the reference
are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.io import read_dicom_series, read_png_stack
from scse_monai.apps.chaos.labels import NUM_CLASSES, ORGANS, labels_from_ct_ground, labels_from_mr_grey
from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import Geometry, as_voxel_to_mm, chaos_dicom_geometry
from scse_monai.metrics.tables import format_table, results_to_json, results_to_rows, rows_to_csv
from scse_monai.utils.io import atomic_write_text

__all__ = [
    "add_arguments",
    "run",
    "LabelInput",
    "read_label_input",
    "find_prediction",
    "load_datalist",
    "read_nifti_labels",
    "evaluate_case",
    "evaluate_datalist",
]

logger = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class LabelInput:
    """One ground or prediction input as read from disk.

    Attributes:
        values: raw values, shape ``(x, y, z)`` = (column, row, slice); PNG values as stored, NIfTI labels.
        kind: ``"png"`` (a folder of slices) or ``"nifti"``.
        affine: the NIfTI affine (voxel -> RAS mm), ``None`` for PNG folders.
        path: where it was read from.
    """

    values: np.ndarray
    kind: str
    affine: np.ndarray | None
    path: Path


def _strip_nifti(name: str) -> str | None:
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def read_nifti_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI label map as ``uint8`` labels 0..4 and its affine.

    Trailing singleton dimensions (e.g. a channel saved by MONAI) are dropped; float files are accepted when their
    values are whole numbers.

    Raises:
        InvalidInputError: if the file cannot be read, is not 3D, or holds values other than the labels 0..4.
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors ... for bad files
        msg = f"unreadable NIfTI file ({type(e).__name__}: {e}); expected a label map"
        raise InvalidInputError(msg, path) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InvalidInputError(f"label map has shape {data.shape}; expected a 3D volume", path)
    values = np.unique(data)
    bad = values[(values != np.round(values)) | (values < 0) | (values >= NUM_CLASSES)] if values.size else values
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:8])
        raise InvalidInputError(f"label map holds values {shown}; expected labels 0..{NUM_CLASSES - 1}", path)
    return data.astype(np.uint8), np.asarray(img.affine, dtype=np.float64)


def read_label_input(path: str | os.PathLike, role: str) -> LabelInput:
    """Read ``path`` as a NIfTI label file or a folder of PNG slices.

    Args:
        path: a ``.nii``/``.nii.gz`` file or a folder of ``*.png`` slices.
        role: ``"ground"`` or ``"prediction"``, used in messages.

    Raises:
        InvalidInputError: if the path is missing, of another kind, or unreadable.
    """
    path = Path(path)
    if path.is_dir():
        return LabelInput(read_png_stack(path), "png", None, path)
    if path.is_file() and _strip_nifti(path.name) is not None:
        values, affine = read_nifti_labels(path)
        return LabelInput(values, "nifti", affine, path)
    if not path.exists():
        raise InvalidInputError(f"{role} not found; expected a NIfTI label file or a folder of PNG slices", path)
    raise InvalidInputError(f"{role} is neither a .nii/.nii.gz file nor a folder of PNG slices", path)


def _pred_png_labels(values: np.ndarray, ct: bool, path: Path) -> np.ndarray:
    if ct:
        # Official readers (cv2 greyscale -> bool, MATLAB logical): any non-zero pixel is the liver.
        return (values != 0).astype(np.uint8)
    if values.max(initial=0) <= 1:  # a 1-bit PNG prediction: liver
        return values.astype(np.uint8)
    labels, unmapped = labels_from_mr_grey(values)
    if unmapped:
        logger.warning("%s: %d non-zero prediction voxels match no organ grey range (background)", path, unmapped)
    return labels


def evaluate_case(
    ground: str | os.PathLike,
    pred: str | os.PathLike,
    dicom: str | os.PathLike | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate one case given as files/folders; see the module docstring for the rules.

    Returns:
        the case's record of :meth:`scse_monai.metrics.CHAOSMetric.results`, per organ and ``"mean"``.

    Raises:
        InvalidInputError: on unreadable inputs, a shape or slice-count mismatch, non-binary CT Ground, unknown
            geometry, or a reference without any organ.
    """
    g = read_label_input(ground, "ground")
    p = read_label_input(pred, "prediction")
    if g.values.shape != p.values.shape:
        raise InvalidInputError(
            f"shape mismatch: ground {g.path} has {g.values.shape} (columns, rows, slices), prediction has "
            f"{p.values.shape}; expected the same number and size of slices",
            p.path,
        )
    modality = ""
    if dicom is not None:
        series = read_dicom_series(dicom, with_pixels=False)
        if tuple(series.shape) != g.values.shape:
            raise InvalidInputError(
                f"DICOM series has {series.shape[2]} slices of {series.shape[1]}x{series.shape[0]} (rows x columns) "
                f"but the ground has {g.values.shape[2]} of {g.values.shape[1]}x{g.values.shape[0]}; expected one "
                "mask per DICOM slice, same size",
                dicom,
            )
        modality = series.modality.upper()
        geometry: object = chaos_dicom_geometry(
            series.iop, series.pixel_spacing, series.ipp_first, series.ipp_last, len(series.files)
        )
    elif spacing is not None:
        geometry = tuple(float(s) for s in spacing)
    elif g.affine is not None or p.affine is not None:
        geometry = g.affine if g.affine is not None else p.affine
    else:
        raise InvalidInputError(
            "voxel spacing unknown: PNG slices carry no geometry; pass --dicom DICOM_FOLDER (the organisers' "
            "geometry) or --spacing SX SY SZ (mm)"
        )

    if g.kind == "png":
        binary_ground = np.isin(g.values, (0, 1, 255)).all()
        ct = modality == "CT" or (modality == "" and binary_ground)
        if ct:
            ref = labels_from_ct_ground(g.values, str(g.path))
        else:
            ref, unmapped = labels_from_mr_grey(g.values)
            if unmapped:
                logger.warning("%s: %d non-zero Ground voxels match no organ grey range", g.path, unmapped)
    else:
        ct = False
        ref = g.values
    if p.kind == "png":
        seg = _pred_png_labels(p.values, ct, p.path)
    else:
        seg = (p.values != 0).astype(np.uint8) if ct else p.values
    metric = _chaos_metric()
    _add_case(metric, "case", seg, ref, geometry)
    cases = metric.results()["cases"]
    if not cases:
        raise InvalidInputError("the reference contains none of the organs; nothing to evaluate", g.path)
    return cases["case"]


def _chaos_metric():
    # imported here: torch/MONAI are not needed by the label I/O that `export` imports from this module
    from scse_monai.metrics.chaos_metric import CHAOSMetric

    return CHAOSMetric()


def _add_case(metric, case: str, seg: np.ndarray, ref: np.ndarray, geometry: Geometry) -> None:
    """Feed one case (label maps, voxel -> mm geometry) to a :class:`~scse_monai.metrics.CHAOSMetric`."""
    import torch
    from monai.data import MetaTensor

    affine = torch.as_tensor(as_voxel_to_mm(geometry))
    meta = {"filename_or_obj": case}
    metric(y_pred=[MetaTensor(torch.as_tensor(seg[None]), affine=affine, meta=dict(meta))],
           y=[MetaTensor(torch.as_tensor(ref[None]), affine=affine, meta=dict(meta))])


def find_prediction(pred_dir: str | os.PathLike, case: str) -> Path:
    """Find the NIfTI prediction of ``case`` under ``pred_dir`` (searched recursively).

    Accepted names: ``<case>.nii[.gz]`` and ``<case>_<suffix>.nii[.gz]`` (MONAI SaveImage writes
    ``<case>/<case>_seg.nii.gz`` by default); ``ct_1`` does not match ``ct_10.nii.gz``. Hidden files are ignored.

    Raises:
        InvalidInputError: if ``pred_dir`` is not a folder, or no file or more than one file matches.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InvalidInputError("prediction folder not found", pred_dir)
    matches = []
    for p in pred_dir.rglob("*.nii*"):
        stem = _strip_nifti(p.name)
        if stem is None or p.name.startswith(".") or not p.is_file():
            continue
        if stem == case or stem.startswith(case + "_"):
            matches.append(p)
    if not matches:
        raise InvalidInputError(
            f"no prediction for case {case!r}; expected {case}.nii.gz, {case}_seg.nii.gz or {case}/{case}_seg.nii.gz",
            pred_dir,
        )
    if len(matches) > 1:
        shown = ", ".join(str(m.relative_to(pred_dir)) for m in sorted(matches))
        raise InvalidInputError(f"ambiguous prediction for case {case!r}: {shown}; expected exactly one", pred_dir)
    return matches[0]


def load_datalist(path: Path) -> dict:
    """Read a ``datalist.json`` as a dict; :class:`InvalidInputError` if missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError("datalist not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"unreadable datalist ({type(e).__name__}: {e}); expected datalist.json"
        raise InvalidInputError(msg, path) from None
    if not isinstance(data, dict):
        raise InvalidInputError("datalist must be a JSON object with 'training'/'test' lists", path)
    return data


def _check_same_grid(pred_path: Path, pred_affine: np.ndarray, ref_affine: np.ndarray, ref_path: Path) -> None:
    # A prediction saved on another grid (e.g. after Orientationd/Spacingd without inversion) can have the same shape
    # but flipped or permuted axes; comparing voxel by voxel would then silently give wrong numbers.
    if not np.allclose(pred_affine, ref_affine, atol=1e-3):
        raise InvalidInputError(
            f"prediction affine differs from {ref_path.name}'s; expected the prediction on the case's original voxel "
            "grid (invert spatial transforms before saving)",
            pred_path,
        )


def evaluate_datalist(
    datalist: str | os.PathLike, pred_dir: str | os.PathLike, folds: list[int] | None = None
) -> dict[str, dict]:
    """Evaluate every labelled datalist entry (optionally only ``folds``) against its prediction in ``pred_dir``.

    Returns:
        :meth:`scse_monai.metrics.CHAOSMetric.results`: ``{"cases": {case: per-organ result}, "mean": summary}``.

    Raises:
        InvalidInputError: on a missing/ambiguous prediction, unreadable file, shape or grid mismatch, or no entry.
    """
    from tqdm import tqdm

    datalist = Path(datalist)
    data = load_datalist(datalist)
    entries = [e for key in ("training", "validation", "test") for e in data.get(key) or [] if isinstance(e, dict)]
    entries = [e for e in entries if e.get("label")]
    if folds:
        entries = [e for e in entries if e.get("fold") in folds]
    if not entries:
        raise InvalidInputError(f"no labelled entries{f' in folds {folds}' if folds else ''}", datalist)
    metric = _chaos_metric()
    for entry in tqdm(entries, desc="evaluate", unit="case"):
        case = str(entry.get("case") or _strip_nifti(Path(entry["label"]).name))
        ref_path = datalist.parent / entry["label"]
        pred_path = find_prediction(pred_dir, case)
        ref, ref_affine = read_nifti_labels(ref_path)
        seg, seg_affine = read_nifti_labels(pred_path)
        if seg.shape != ref.shape:
            raise InvalidInputError(
                f"shape mismatch: prediction {seg.shape} vs label {ref_path.name} {ref.shape}", pred_path
            )
        _check_same_grid(pred_path, seg_affine, ref_affine, ref_path)
        if not np.isin(ref, list(ORGANS)).any():
            logger.warning("%s: reference holds no organ; case skipped", ref_path)
            continue
        _add_case(metric, case, seg, ref, ref_affine)
    return metric.results()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai evaluate``."""
    parser.add_argument("--ground", type=Path, help="reference: NIfTI label file or folder of Ground PNGs")
    parser.add_argument(
        "--pred", type=Path, required=True, help="prediction: NIfTI file or PNG folder (batch mode: a folder of NIfTI)"
    )
    parser.add_argument("--dicom", type=Path, help="DICOM folder of the case: the organisers' voxel->mm geometry")
    parser.add_argument(
        "--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="voxel size in mm (columns, rows, slices)"
    )
    parser.add_argument("--datalist", type=Path, help="batch mode: datalist.json written by `scse-monai convert`")
    parser.add_argument("--fold", type=int, action="append", help="batch mode: only entries of this fold (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--csv", type=Path, help="write one row per case and organ (and means) as CSV here")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai evaluate``; returns the exit status."""
    if (args.ground is None) == (args.datalist is None):
        raise InvalidInputError("give exactly one of --ground (single case) or --datalist (batch mode)")
    if args.datalist is not None:
        if args.dicom is not None or args.spacing is not None:
            raise InvalidInputError("--dicom/--spacing apply to single cases; batch mode uses the NIfTI affines")
        out = evaluate_datalist(args.datalist, args.pred, args.fold)
        rows = results_to_rows(out["cases"], out["mean"])
        payload: dict = out
    else:
        result = evaluate_case(args.ground, args.pred, args.dicom, args.spacing)
        case = _strip_nifti(args.pred.name) or args.pred.name
        rows = results_to_rows({case: result})
        payload = result
    print(format_table(rows))
    if args.json is not None:
        atomic_write_text(args.json, results_to_json(payload))
    if args.csv is not None:
        atomic_write_text(args.csv, rows_to_csv(rows))
    return 0
