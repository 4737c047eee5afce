"""``scse-monai evaluate``: the official CHAOS metrics (DICE, RAVD, ASSD, MSSD) and scores of a segmentation.

Single case::

    scse-monai evaluate --ground G --pred P [--dicom D | --spacing SX SY SZ] [--json OUT.json] [--csv OUT.csv]

``G`` and ``P`` are each a NIfTI label file (labels 0..4) or a folder of CHAOS PNG slices (sorted by natural name
order; ``P`` may be numbered from 1 while ``G`` starts at 0, as in the official sample). With PNG inputs the voxel ->
mm geometry comes from the DICOM folder ``D`` exactly as the organisers compute it (first/last file in name order,
see :func:`scse_monai.apps.chaos.io.dicom_affine` with ``convention="chaos"``), or from ``--spacing``; otherwise from
the NIfTI affine (ground's, else prediction's). Two NIfTI files are compared in world coordinates: a prediction
stored with permuted or flipped axes and the matching affine is mapped onto the ground's grid; another grid or a
degenerate affine is an error.

Organ mode (how PNG values become labels):

- CT (``D``'s Modality is CT, or without ``D`` a PNG ground holding only 0/1/255): liver only, as the official
  readers do it: the ground must be binary (else an error), and **any non-zero prediction voxel is liver** (the
  organisers' sample submission uses 63).
- otherwise: PNGs are mapped through the MR grey-level ranges (55, 70] -> liver, (110, 135] -> right kidney,
  (175, 200] -> left kidney, (240, 255] -> spleen; a 1-bit PNG prediction is liver. NIfTI files hold labels already.

Batch mode, over a converted ``datalist.json`` (entries with a ``"label"``) and a folder of NIfTI predictions found by
exact case name (``<case>.nii.gz``, ``<case>_seg.nii.gz`` or MONAI SaveImage's ``<case>/<case>_seg.nii.gz``)::

    scse-monai evaluate --datalist DATALIST --pred PRED_DIR [--fold K ...] [--json OUT.json] [--csv OUT.csv]

Output: a table on stdout; ``--json`` writes ``{"<organ>": {dice, ravd, assd, mssd, score_dice, score_ravd,
score_assd, score_mssd, score}, ..., "mean": {...}}`` (RAVD in percent, distances in mm) for one case and
``{"cases": {"<case>": {...}}, "mean": {...}}`` in batch mode; ``--csv`` one row per case and organ, the case means,
and the means over cases (see :func:`scse_monai.metrics.chaos.summarise_cases`). Organs absent from the reference
are skipped. Output files must lie outside every input (they are never written over an input) and are written
atomically.

This module only parses the command line; the work is done by :mod:`scse_monai.apps.chaos.scoring` (scores),
:mod:`scse_monai.apps.chaos.labelmaps` (label I/O, prediction lookup, the grid check) and
:mod:`scse_monai.data.datalist` (the datalist reader).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scse_monai.apps.chaos.scoring import evaluate_case, evaluate_datalist
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_write_text, case_name, check_output_path

__all__ = ["add_arguments", "run"]


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


def _check_outputs(args: argparse.Namespace) -> None:
    inputs = {"--ground": args.ground, "--pred": args.pred, "--dicom": args.dicom, "--datalist": args.datalist}
    if args.datalist is not None:  # the label volumes it lists are inputs too
        from scse_monai.data.datalist import datalist_entries, entry_path

        for e in datalist_entries(args.datalist):
            for key in ("label", "image"):
                if e.get(key):
                    inputs[f"{key} of {e['case']}"] = entry_path(args.datalist, e[key])
    for flag in ("json", "csv"):
        out = getattr(args, flag)
        if out is not None:
            check_output_path(out, inputs)
    if args.json is not None and args.csv is not None and args.json.resolve() == args.csv.resolve():
        raise InvalidInputError("--json and --csv name the same file; expected two outputs", args.json)


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai evaluate``; returns the exit status."""
    from scse_monai.metrics.tables import format_table, results_to_json, results_to_rows, rows_to_csv

    if (args.ground is None) == (args.datalist is None):
        raise InvalidInputError("give exactly one of --ground (single case) or --datalist (batch mode)")
    if args.datalist is not None and (args.dicom is not None or args.spacing is not None):
        raise InvalidInputError("--dicom/--spacing apply to single cases; batch mode uses the NIfTI affines")
    _check_outputs(args)  # before any work: an output must never overwrite an input
    if args.datalist is not None:
        out = evaluate_datalist(args.datalist, args.pred, args.fold)
        rows = results_to_rows(out["cases"], out["mean"])
        payload: dict = out
    else:
        result = evaluate_case(args.ground, args.pred, args.dicom, args.spacing)
        rows = results_to_rows({case_name(args.pred): result})
        payload = result
    print(format_table(rows))
    if args.json is not None:
        atomic_write_text(args.json, results_to_json(payload))
    if args.csv is not None:
        atomic_write_text(args.csv, rows_to_csv(rows))
    return 0
