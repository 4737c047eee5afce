"""``scse-monai export-submission``: NIfTI predictions -> the CHAOS submission layout (one PNG per slice).

::

    scse-monai export-submission PRED_DIR DATALIST OUT_DIR [--section test|training|all] [--overwrite]

For every entry of the chosen datalist section(s) the prediction is found in ``PRED_DIR`` by case name
(``<case>.nii.gz``, ``<case>_seg.nii.gz`` or MONAI SaveImage's ``<case>/<case>_seg.nii.gz``, searched recursively;
see :func:`scse_monai.apps.chaos.evaluate.find_prediction`), checked against the entry's label (or image) for shape
and voxel grid, and written as::

    OUT_DIR/CT/<id>/Results/img000.png ...            CT cases (liver)
    OUT_DIR/MR/<id>/T2SPIR/Results/img000.png ...     MR T2-SPIR
    OUT_DIR/MR/<id>/T1DUAL/Results/img000.png ...     MR T1-DUAL: ONE stack for both phases

- slice ``k`` is ``pred[:, :, k].T`` (the data contract's transpose back to PNG rows x columns), in the original
  DICOM name order, so the k-th PNG pairs with the k-th DICOM as the organisers require; names are zero-padded
  (at least 3 digits, numbered from 0 like nnU-Net v1's writer) so that sorted order is slice order;
- 8-bit greyscale, grey values liver 63, right kidney 126, left kidney 189, spleen 252, background 0 (the organisers'
  sample submission and nnU-Net v1 use exactly these);
- T1-DUAL: the Ground (and so the submission) is one stack for both phases. The **in-phase** prediction is exported
  when it exists, else the out-phase one. A voxel-wise fusion of the two phases (nnU-Net v1 averages softmax
  outputs) needs probabilities, which label maps do not carry; fusing hard labels would only add ties.

The CHAOS CT task folder names are not documented in the material read (``shared/reference/CHAOS.md`` section 10);
consult the organisers' submission manual before uploading and rename the top-level folders if needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.evaluate import find_prediction, load_datalist, read_nifti_labels
from scse_monai.apps.chaos.labels import labels_to_grey
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import current_umask

__all__ = ["add_arguments", "run", "submission_folder", "export_case", "export_submission"]

logger = logging.getLogger(__name__)

# T1DUAL phases in order of preference for the single submitted stack.
_PHASE_PRIORITY = {"t1dual_in": 0, "t1dual_out": 1}


def submission_folder(entry: dict, out_dir: str | os.PathLike) -> Path:
    """The ``Results`` folder of a datalist entry (see the module docstring for the layout).

    Raises:
        InvalidInputError: if the entry lacks ``chaos_id`` or has an unknown ``modality``.
    """
    out_dir = Path(out_dir)
    cid, modality = entry.get("chaos_id"), entry.get("modality")
    if cid in (None, ""):
        raise InvalidInputError(f"datalist entry {entry.get('case')!r} has no 'chaos_id'; expected a converted entry")
    if modality == "ct":
        return out_dir / "CT" / str(cid) / "Results"
    if modality == "t2spir":
        return out_dir / "MR" / str(cid) / "T2SPIR" / "Results"
    if modality in _PHASE_PRIORITY:
        return out_dir / "MR" / str(cid) / "T1DUAL" / "Results"
    raise InvalidInputError(
        f"datalist entry {entry.get('case')!r} has modality {modality!r}; expected ct, t2spir, t1dual_in or t1dual_out"
    )


def _check_grid(pred_path: Path, entry: dict, datalist_dir: str | os.PathLike) -> None:
    """Header-only check that the prediction lies on the entry's voxel grid (shape and affine)."""
    import nibabel as nib

    ref_rel = entry.get("label") or entry.get("image")
    if not ref_rel:
        raise InvalidInputError(f"datalist entry {entry.get('case')!r} has neither 'label' nor 'image'")
    ref_path = Path(datalist_dir) / ref_rel
    try:
        ref = nib.load(str(ref_path))
    except Exception as e:  # missing or corrupt reference volume
        raise InvalidInputError(f"cannot read the case's volume ({type(e).__name__}: {e})", ref_path) from None
    try:
        pred = nib.load(str(pred_path))
    except Exception as e:  # nibabel raises several types for bad files
        msg = f"unreadable NIfTI file ({type(e).__name__}: {e}); expected a label map"
        raise InvalidInputError(msg, pred_path) from None
    shape = tuple(pred.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if shape != tuple(ref.shape[:3]):
        raise InvalidInputError(
            f"prediction shape {shape} differs from {ref_path.name} {tuple(ref.shape)}; expected the case's "
            "original voxel grid (one slice per DICOM file)",
            pred_path,
        )
    # Same shape is not enough: a prediction left in another orientation would be exported flipped or transposed.
    if not np.allclose(pred.affine, ref.affine, atol=1e-3):
        raise InvalidInputError(
            f"prediction affine differs from {ref_path.name}'s; expected the case's original voxel grid (invert "
            "spatial transforms such as Orientationd/Spacingd before saving)",
            pred_path,
        )


def export_case(pred_path: str | os.PathLike, entry: dict, datalist_dir: str | os.PathLike, folder: Path) -> int:
    """Write one prediction as submission PNGs into ``folder``; returns the number of slices written.

    Raises:
        InvalidInputError: if the prediction is unreadable, holds values outside 0..4, or differs in shape or voxel
            grid from the entry's label (or image).
    """
    from PIL import Image

    pred_path = Path(pred_path)
    _check_grid(pred_path, entry, datalist_dir)
    labels, _ = read_nifti_labels(pred_path)
    grey = labels_to_grey(labels)
    n = grey.shape[2]
    width = max(3, len(str(n - 1)))
    # The whole stack is written into a hidden sibling folder and renamed into place: a stack cut short by a kill
    # would otherwise look like a (shorter) complete submission.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700
    try:
        for k in range(n):
            image = Image.fromarray(np.ascontiguousarray(grey[:, :, k].T), mode="L")
            image.save(staging / f"img{k:0{width}d}.png", format="PNG")
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        if folder.exists():  # other (non-PNG) files of the user's stay; the PNGs move in one by one
            for png in sorted(staging.iterdir()):
                os.replace(png, folder / png.name)
            staging.rmdir()
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return n


def export_submission(
    pred_dir: str | os.PathLike,
    datalist: str | os.PathLike,
    out_dir: str | os.PathLike,
    sections: tuple[str, ...] = ("test",),
    overwrite: bool = False,
) -> list[Path]:
    """Export every case of ``sections`` of ``datalist``; returns the ``Results`` folders written.

    Raises:
        InvalidInputError: on a missing/ambiguous prediction, a bad prediction (see :func:`export_case`), no entry
            in the sections, or a ``Results`` folder that already holds PNGs (unless ``overwrite``).
    """
    from tqdm import tqdm

    datalist = Path(datalist)
    data = load_datalist(datalist)
    entries = [e for s in sections for e in data.get(s) or [] if isinstance(e, dict)]
    if not entries:
        raise InvalidInputError(f"no entries in section(s) {', '.join(sections)}", datalist)
    groups: dict[Path, list[dict]] = {}
    for e in entries:
        groups.setdefault(submission_folder(e, out_dir), []).append(e)
    jobs: list[tuple[Path, dict, Path]] = []
    for folder, group in groups.items():
        group.sort(key=lambda e: _PHASE_PRIORITY.get(e.get("modality"), 0))
        errors = []
        for e in group:
            try:
                jobs.append((find_prediction(pred_dir, str(e.get("case"))), e, folder))
                break
            except InvalidInputError as err:
                errors.append(err)
        else:
            if len(errors) == 1:
                raise errors[0]
            cases = [e.get("case") for e in group]
            raise InvalidInputError(f"no prediction for any of {cases} (T1DUAL: in- or out-phase): {errors[0]}")
    for pred_path, entry, folder in jobs:
        _check_grid(pred_path, entry, datalist.parent)  # cheap header checks before any file is written
        stale = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if stale and not overwrite:
            raise InvalidInputError(
                f"already holds {len(stale)} PNG files; expected an empty Results folder (use --overwrite to replace)",
                folder,
            )
        for p in stale:  # a stale longer stack would otherwise add slices to the submission
            p.unlink()
    written = []
    for pred_path, entry, folder in tqdm(jobs, desc="export", unit="case"):
        n = export_case(pred_path, entry, datalist.parent, folder)
        logger.info("%s -> %s (%d slices)", pred_path.name, folder, n)
        written.append(folder)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai export-submission``."""
    parser.add_argument("pred_dir", type=Path, help="folder of NIfTI predictions (searched recursively by case name)")
    parser.add_argument("datalist", type=Path, help="datalist.json written by `scse-monai convert`")
    parser.add_argument("out_dir", type=Path, help="submission folder to write (CT/<id>/Results, MR/<id>/...)")
    parser.add_argument(
        "--section", choices=("test", "training", "all"), default="test", help="datalist section(s) to export"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace PNGs already in a Results folder")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai export-submission``; returns the exit status."""
    sections = ("training", "test") if args.section == "all" else (args.section,)
    folders = export_submission(args.pred_dir, args.datalist, args.out_dir, sections, args.overwrite)
    print(f"wrote {len(folders)} case folder(s) under {args.out_dir}")
    return 0
