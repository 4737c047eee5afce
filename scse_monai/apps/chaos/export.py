"""``scse-monai export-submission``: NIfTI predictions -> the CHAOS submission layout (one PNG per slice).

::

    scse-monai export-submission PRED_DIR DATALIST OUT_DIR [--section test|training|all] [--overwrite]

The case names are those of :mod:`scse_monai.data.naming`, which the converter and the bundle's batch inference
over a CHAOS tree share, so ``PRED_DIR`` can be the bundle's ``output_dir`` of a run on the raw CHAOS test set.
For every entry of the chosen datalist section(s) the prediction is found in ``PRED_DIR`` by exact case name
(``<case>.nii.gz``, ``<case>_seg.nii.gz`` or MONAI SaveImage's ``<case>/<case>_seg.nii.gz``, searched recursively;
see :func:`scse_monai.apps.chaos.labelmaps.find_prediction`), checked against the entry's label (or image) for voxel
grid (:func:`~scse_monai.apps.chaos.labelmaps.grid_mapping`: a prediction stored with permuted or flipped axes and the
matching affine is mapped back; any other grid is an error) and label values, and written as::

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

Safety: the output folder must lie outside the predictions and the datalist; one run at a time per output folder (a
lock; a second run is refused); ``chaos_id`` and case names from the datalist must be plain names (no path
traversal). Every case is checked and written into a hidden staging folder first; only when *all* cases are staged
are the ``Results`` folders replaced, case by case, each by one rename (``--overwrite``; without it, a ``Results``
folder that already holds PNGs is an error before anything is written). Temporaries of a killed run are removed (or,
for an interrupted replacement, restored) by the next run, so they never end up in a submission.

The CHAOS CT task folder names are not documented in the material read (``shared/reference/CHAOS.md`` section 10);
consult the organisers' submission manual before uploading and rename the top-level folders if needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.labelmaps import find_prediction, grid_mapping, read_nifti_labels
from scse_monai.apps.chaos.labels import labels_to_grey
from scse_monai.data.datalist import datalist_entries, entry_path
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import (
    check_output_path,
    check_regular_file,
    check_safe_name,
    make_staging_dir,
    output_lock,
    pid_alive,
    remove_stale_temporaries,
)

__all__ = ["add_arguments", "run", "submission_folder", "stage_case", "commit_case", "export_case",
           "export_submission"]

logger = logging.getLogger(__name__)

# T1DUAL phases in order of preference for the single submitted stack.
_PHASE_PRIORITY = {"t1dual_in": 0, "t1dual_out": 1}
_OLD = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.old\.tmp$")
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9]+\.[^.]+\.tmp")


def submission_folder(entry: dict, out_dir: str | os.PathLike) -> Path:
    """The ``Results`` folder of a datalist entry (see the module docstring for the layout).

    Raises:
        InvalidInputError: if the entry lacks ``chaos_id``, its ``chaos_id`` is not a plain name, or it has an
            unknown ``modality``.
    """
    out_dir = Path(out_dir)
    cid, modality = entry.get("chaos_id"), entry.get("modality")
    if cid in (None, ""):
        raise InvalidInputError(f"datalist entry {entry.get('case')!r} has no 'chaos_id'; expected a converted entry")
    cid = check_safe_name(cid, f"datalist entry {entry.get('case')!r}: chaos_id")
    if modality == "ct":
        return out_dir / "CT" / cid / "Results"
    if modality == "t2spir":
        return out_dir / "MR" / cid / "T2SPIR" / "Results"
    if modality in _PHASE_PRIORITY:
        return out_dir / "MR" / cid / "T1DUAL" / "Results"
    raise InvalidInputError(
        f"datalist entry {entry.get('case')!r} has modality {modality!r}; expected ct, t2spir, t1dual_in or t1dual_out"
    )


def _reference_grid(entry: dict, datalist: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray, Path]:
    """Shape and affine (header only) of the entry's label, else image: the grid the prediction must be on."""
    import nibabel as nib

    ref_rel = entry.get("label") or entry.get("image")
    if not ref_rel:
        raise InvalidInputError(f"datalist entry {entry.get('case')!r} has neither 'label' nor 'image'", datalist)
    ref_path = entry_path(datalist, ref_rel)
    try:
        check_regular_file(ref_path, "case volume")
        ref = nib.load(str(ref_path))
        return tuple(ref.shape), np.asarray(ref.affine, dtype=np.float64), ref_path
    except InvalidInputError:
        raise
    except Exception as e:  # nibabel raises several types for missing or corrupt files
        raise InvalidInputError(f"cannot read the case's volume ({type(e).__name__}: {e})", ref_path) from e


def stage_case(pred_path: str | os.PathLike, entry: dict, datalist: str | os.PathLike, folder: Path) -> Path:
    """Check one prediction and write it as submission PNGs into a new hidden staging folder beside ``folder``.

    Returns:
        The staging folder (complete; rename it onto ``folder`` with :func:`commit_case`).

    Raises:
        InvalidInputError: if the prediction is unreadable, holds values outside the labels, or lies on another
            voxel grid than the entry's label (or image). Nothing is left behind.
    """
    from PIL import Image

    pred_path = Path(pred_path)
    ref_shape, ref_affine, ref_path = _reference_grid(entry, datalist)
    labels, affine = read_nifti_labels(pred_path)
    mapping = grid_mapping(labels.shape, affine, ref_shape, ref_affine, pred_path, ref_path.name, reorient=True)
    grey = labels_to_grey(mapping.apply(labels))
    n = grey.shape[2]
    width = max(3, len(str(n - 1)))
    staging = make_staging_dir(folder)
    try:
        for k in range(n):
            image = Image.fromarray(np.ascontiguousarray(grey[:, :, k].T), mode="L")
            image.save(staging / f"img{k:0{width}d}.png", format="PNG")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def commit_case(staging: Path, folder: Path) -> int:
    """Replace ``folder`` by the complete ``staging`` folder (one rename); the user's non-PNG files there stay.

    The old folder is first renamed to ``.<name>.<pid>.old.tmp``; a run killed between the two renames leaves it
    there and the next run renames it back (:func:`recover_interrupted`). Returns the number of PNGs.
    """
    n = sum(1 for _ in staging.glob("*.png"))
    if not folder.exists():
        os.replace(staging, folder)
        return n
    old = folder.parent / f".{folder.name}.{os.getpid()}.old.tmp"
    os.replace(folder, old)
    os.replace(staging, folder)
    for p in old.iterdir():  # keep what is not ours (notes, other files) in the new folder
        if p.suffix.lower() != ".png" and not (folder / p.name).exists():
            os.replace(p, folder / p.name)
    shutil.rmtree(old, ignore_errors=True)
    return n


def export_case(pred_path: str | os.PathLike, entry: dict, datalist: str | os.PathLike, folder: Path) -> int:
    """:func:`stage_case` then :func:`commit_case` for one case; returns the number of slices written."""
    return commit_case(stage_case(pred_path, entry, datalist, folder), folder)


def _clean_submission(out_dir: Path) -> None:
    """Restore interrupted replacements, then remove killed runs' temporaries from the submission tree.

    Only the submission's own folders are searched (``CT/``, ``MR/`` and the top level), not whatever else the output
    folder holds.
    """
    trees = [out_dir / "CT", out_dir / "MR"]
    for tree in trees:
        recover_interrupted(tree)
    remove_stale_temporaries(trees, recursive=True)
    top = [m for m in (_TEMP.match(p.name) for p in out_dir.glob(".*.tmp*")) if m is not None]
    remove_stale_temporaries([out_dir / m.group("name") for m in top])


def recover_interrupted(out_dir: Path) -> None:
    """Undo a replacement a killed run left half-done (``Results`` renamed away, new stack not yet in place)."""
    if not out_dir.is_dir():
        return
    for old in out_dir.rglob(".*.old.tmp"):
        m = _OLD.match(old.name)
        if m is None or not old.is_dir() or pid_alive(int(m.group("pid"))):
            continue
        target = old.parent / m.group("name")
        if not target.exists():
            os.replace(old, target)
            logger.warning("%s: restored the previous Results of an interrupted run", target)


def export_submission(
    pred_dir: str | os.PathLike,
    datalist: str | os.PathLike,
    out_dir: str | os.PathLike,
    sections: tuple[str, ...] = ("test",),
    overwrite: bool = False,
) -> list[Path]:
    """Export every case of ``sections`` of ``datalist``; returns the ``Results`` folders written.

    Raises:
        InvalidInputError: on an output folder inside an input or in use by another run, a malformed datalist, a
            missing/ambiguous prediction, a bad prediction (see :func:`stage_case`), no entry in the sections, or a
            ``Results`` folder that already holds PNGs (unless ``overwrite``). Nothing in ``out_dir`` changes then.
    """
    from tqdm import tqdm

    datalist, out_dir = Path(datalist), Path(out_dir)
    check_output_path(out_dir, {"PRED_DIR": pred_dir, "DATALIST": datalist}, kind="folder")
    entries = datalist_entries(datalist, sections)
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
                jobs.append((find_prediction(pred_dir, e["case"]), e, folder))
                break
            except InvalidInputError as err:
                errors.append(err)
        else:
            if len(errors) == 1:
                raise errors[0]
            cases = [e.get("case") for e in group]
            raise InvalidInputError(f"no prediction for any of {cases} (T1DUAL: in- or out-phase): {errors[0]}")
    with output_lock(out_dir, "export-submission"):
        _clean_submission(out_dir)
        for _, _, folder in jobs:
            stale = sorted(folder.glob("*.png")) if folder.is_dir() else []
            if stale and not overwrite:
                raise InvalidInputError(
                    f"already holds {len(stale)} PNG files; expected an empty Results folder (use --overwrite to "
                    "replace)",
                    folder,
                )
        staged: list[tuple[Path, Path, Path]] = []
        try:
            for pred_path, entry, folder in tqdm(jobs, desc="check", unit="case"):
                staged.append((stage_case(pred_path, entry, datalist, folder), folder, pred_path))
            written = []
            for staging, folder, pred_path in staged:  # everything checked and complete: now replace
                n = commit_case(staging, folder)
                logger.info("%s -> %s (%d slices)", pred_path.name, folder, n)
                written.append(folder)
        finally:
            for staging, _, _ in staged:
                shutil.rmtree(staging, ignore_errors=True)  # only those not committed still exist
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai export-submission``."""
    parser.add_argument("pred_dir", type=Path, help="folder of NIfTI predictions (searched recursively by case name)")
    parser.add_argument("datalist", type=Path, help="datalist.json written by `scse-monai convert`")
    parser.add_argument("out_dir", type=Path, help="submission folder to write (CT/<id>/Results, MR/<id>/...)")
    parser.add_argument(
        "--section", choices=("test", "training", "all"), default="test", help="datalist section(s) to export"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace Results folders that hold PNGs (after every case is checked)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai export-submission``; returns the exit status."""
    sections = ("training", "test") if args.section == "all" else (args.section,)
    folders = export_submission(args.pred_dir, args.datalist, args.out_dir, sections, args.overwrite)
    print(f"wrote {len(folders)} case folder(s) under {args.out_dir}")
    return 0
