"""Convert a CHAOS root (DICOM + Ground PNG) to NIfTI volumes and an MSD-style ``datalist.json``.

``scse-monai convert CHAOS_ROOT OUT_DIR [--modality ct|t1dual|t2spir|all] [--folds 5] [--seed 0] [--workers N]``

Rules (Kavur et al. 2021 and the organisers' evaluation code; see ``shared/reference/CHAOS.md``):

- slices in natural file-name order, the k-th DICOM paired with the k-th PNG, counts checked (:mod:`.io` is the one
  place that fixes the order; nothing here reorders or flips);
- geometry from the DICOM headers (first/last ImagePositionPatient, never SliceThickness), image and label written
  with the very same affine; CT in HU;
- labels in one space for all modalities (:mod:`.labels`); T1DUAL in- and out-phase are separate cases sharing the
  Ground stack, the phase taken from the folder name and checked against EchoTime (longer echo = in-phase at 1.5 T);
- folds per patient (all MR sequences of one id in one fold), seeded; CT and MR patients are dealt round-robin
  separately so that every fold gets both modalities;
- outputs written atomically; a case whose files all exist is skipped on a re-run (``--overwrite`` re-converts); the
  datalist is written last. Bad input fails its case with one line naming the case, the file and what was expected;
  the other cases still convert and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scse_monai.apps.chaos.discover import MODALITIES, ChaosCase, discover_cases, find_set_roots
from scse_monai.apps.chaos.io import natural_key, read_dicom_series, read_png_stack
from scse_monai.apps.chaos.labels import LABELS, labels_from_ct_ground, labels_from_mr_grey
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import (
    atomic_path,
    atomic_write_text,
    check_output_path,
    naming_errors,
    output_lock,
    remove_stale_temporaries,
)

__all__ = [
    "ConversionReport",
    "convert_chaos",
    "convert_case",
    "assign_folds",
    "case_outputs",
    "add_arguments",
    "run",
]

logger = logging.getLogger(__name__)

DATALIST_NAME = "datalist.json"
META_DIR = "meta"  # per-case sidecar JSON, written last for each case: lets a re-run rebuild the datalist
LICENCE = "CC-BY-NC-SA-4.0 (CHAOS data: Kavur et al., Medical Image Analysis 69 (2021) 101950; Zenodo 3362845)"


@dataclass
class ConversionReport:
    """What :func:`convert_chaos` did.

    Attributes:
        converted: case ids converted in this run.
        skipped: case ids whose outputs were already complete.
        failed: ``(case, message)`` for each case that could not be converted.
        warnings: ``"<case>: <warning>"`` lines (unmapped label values, EchoTime/folder disagreement, ...).
        datalist: path of the written ``datalist.json`` (``None`` if no case could be converted).
    """

    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    datalist: Path | None = None

    @property
    def ok(self) -> bool:
        """``True`` if no case failed."""
        return not self.failed

    def summary(self) -> str:
        """Multi-line end-of-run summary."""
        counts = f"converted {len(self.converted)}, skipped (already complete) {len(self.skipped)}"
        lines = [f"{counts}, failed {len(self.failed)}"]
        lines += [f"  FAILED {case}: {msg}" for case, msg in self.failed]
        lines += [f"  WARNING {w}" for w in self.warnings]
        lines.append(f"datalist: {self.datalist}" if self.datalist else "datalist: not written (nothing converted)")
        return "\n".join(lines)


def case_outputs(case: ChaosCase, out_dir: str | os.PathLike) -> dict[str, Path]:
    """The output files of ``case`` under ``out_dir``: ``image``, ``label`` (training only) and ``meta``."""
    out_dir = Path(out_dir)
    if case.split == "train":
        paths = {
            "image": out_dir / "imagesTr" / f"{case.case}.nii.gz",
            "label": out_dir / "labelsTr" / f"{case.case}.nii.gz",
        }
    else:
        paths = {"image": out_dir / "imagesTs" / f"{case.case}.nii.gz"}
    paths["meta"] = out_dir / META_DIR / f"{case.split}_{case.case}.json"
    return paths


def _nifti(array: np.ndarray, affine: np.ndarray):
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)  # scanner coordinates: the affine comes straight from the DICOM headers
    img.set_sform(affine, code=1)
    return img


def _check_phase(case: ChaosCase, echo_time: float | None, echo_times: Sequence[float]) -> list[str]:
    """Check the folder's phase against EchoTime.

    At 1.5 T the in-phase echo (~4.6 ms) is longer than the opposed-phase one (~2.3 ms); jonasteuwen/chaos-challenge
    identifies the phases by exactly this rule.
    """
    warnings = []
    if len(echo_times) > 1:
        warnings.append(f"{case.dicom_dir}: several EchoTime values {list(echo_times)} in one phase folder")
    other_dir = case.dicom_dir.parent / ("OutPhase" if case.modality == "t1dual_in" else "InPhase")
    try:
        other = read_dicom_series(other_dir, with_pixels=False).echo_time
    except InvalidInputError:
        return warnings  # the other phase fails (and is reported) as its own case
    if echo_time is None or other is None:
        warnings.append(f"{case.dicom_dir}: EchoTime missing; phase taken from the folder name only")
        return warnings
    mine_longer = echo_time > other
    if echo_time == other or mine_longer != (case.modality == "t1dual_in"):
        folder = case.dicom_dir.name
        warnings.append(
            f"{case.dicom_dir}: folder {folder} has EchoTime {echo_time:g} ms vs {other:g} ms in {other_dir.name}; "
            "expected the in-phase echo to be the longer one (1.5 T); phase taken from the folder name"
        )
    return warnings


def convert_case(case: ChaosCase, out_dir: str | os.PathLike, overwrite: bool = False) -> dict:
    """Convert one case; returns ``{"status": "converted"|"skipped", "entry": {...}, "warnings": [...]}``.

    Raises:
        InvalidInputError: for any bad input of this case (message names the file and what was expected).
    """
    outputs = case_outputs(case, out_dir)
    if not overwrite and all(p.is_file() for p in outputs.values()):
        previous = _read_sidecar(outputs["meta"], case)
        if previous is not None:
            return previous
    remove_stale_temporaries(outputs.values())
    series = read_dicom_series(case.dicom_dir)
    if case.modality == "ct" and series.modality and series.modality != "CT":
        raise InvalidInputError(f"DICOM Modality {series.modality!r}; expected 'CT' in a CT case", series.files[0])
    if case.modality != "ct" and series.modality and series.modality != "MR":
        raise InvalidInputError(f"DICOM Modality {series.modality!r}; expected 'MR' in an MR case", series.files[0])
    warnings: list[str] = []
    entry: dict = {
        "image": outputs["image"].relative_to(out_dir).as_posix(),
        "case": case.case,
        "modality": case.modality,
        "patient": case.patient,
        "chaos_id": case.chaos_id,
        "source": case.source,
        "name_order_matches_position": series.name_order_matches_position,
    }
    if not series.positions_monotonic:
        warnings.append(f"{case.dicom_dir}: slice positions are not monotonic in file-name order")
    if series.position_deviation_mm > 0.01 * series.spacing[2]:
        entry["position_deviation_mm"] = round(series.position_deviation_mm, 4)
        warnings.append(
            f"{case.dicom_dir}: uneven slice spacing: the first/last-file affine places a slice "
            f"{series.position_deviation_mm:.3g} mm from its ImagePositionPatient"
        )
    if case.modality.startswith("t1dual"):
        warnings += _check_phase(case, series.echo_time, series.echo_times)
    if series.echo_time is not None:
        entry["echo_time"] = series.echo_time
    labels = None
    if case.split == "train":
        assert case.ground_dir is not None
        if not case.ground_dir.is_dir():
            raise InvalidInputError(
                "Ground folder not found; expected one PNG mask per DICOM slice in a training case", case.ground_dir
            )
        raw = read_png_stack(case.ground_dir)
        if raw.shape[2] != series.shape[2]:
            raise InvalidInputError(
                f"{raw.shape[2]} Ground PNGs for {series.shape[2]} DICOM files in {case.dicom_dir}; expected one PNG "
                "per DICOM slice (paired by file-name order)",
                case.ground_dir,
            )
        if raw.shape[:2] != series.shape[:2]:
            raise InvalidInputError(
                f"Ground masks are {raw.shape[1]}x{raw.shape[0]} (rows x columns) but the DICOM slices are "
                f"{series.shape[1]}x{series.shape[0]}; expected the same size",
                case.ground_dir,
            )
        if case.modality == "ct":
            labels = labels_from_ct_ground(raw, case=str(case.ground_dir))
        else:
            labels, unmapped = labels_from_mr_grey(raw)
            if unmapped and not labels.any():
                # A few off-range values (e.g. the "torsal" 32) are expected; no organ value at all is not CHAOS MR
                # Ground (e.g. a 1-bit CT mask or an inverted image) and would silently give an empty label map.
                values = np.unique(raw[raw > 0])
                raise InvalidInputError(
                    f"MR Ground values {values[:8].tolist()} fall in no organ range; expected grey levels 63/126/189/"
                    "252 within (55,70], (110,135], (175,200], (240,255]",
                    case.ground_dir,
                )
            entry["unmapped_label_voxels"] = unmapped
            if unmapped:
                values = np.unique(raw[(raw > 0) & (labels == 0)])
                warnings.append(
                    f"{case.ground_dir}: {unmapped} non-zero Ground voxels (values {values[:8].tolist()}) outside "
                    "the organ ranges (55,70], (110,135], (175,200], (240,255] set to background"
                )
        entry["label"] = outputs["label"].relative_to(out_dir).as_posix()
    # All files of the case are written to temporaries first; only when every one is complete are they renamed, label
    # first, image second, sidecar last (the sidecar marks the case complete). A failed write (a full disk) therefore
    # leaves the previous run's files of this case as they were, never a new label beside an old image.
    with contextlib.ExitStack() as stack:  # renames run in reverse order of entry
        meta_tmp = stack.enter_context(atomic_path(outputs["meta"]))
        image_tmp = stack.enter_context(atomic_path(outputs["image"]))
        if labels is not None:
            label_tmp = stack.enter_context(atomic_path(outputs["label"]))
            with naming_errors(outputs["label"], label_tmp):
                _save_nifti(_nifti(labels.astype(np.uint8), series.affine), label_tmp)
        with naming_errors(outputs["image"], image_tmp):
            _save_nifti(_nifti(series.array, series.affine), image_tmp)
        with naming_errors(outputs["meta"], meta_tmp):
            meta_tmp.write_text(json.dumps({"entry": entry, "warnings": warnings}, indent=1), encoding="utf-8")
    return {"status": "converted", "entry": entry, "warnings": warnings}


def _save_nifti(image, path: Path) -> None:
    import nibabel as nib

    nib.save(image, str(path))


def _read_sidecar(path: Path, case: ChaosCase) -> dict | None:
    """The result recorded by an earlier run of ``case``, or ``None`` (convert again) if the sidecar is damaged."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = None
    entry = meta.get("entry") if isinstance(meta, dict) else None
    warnings = meta.get("warnings", []) if isinstance(meta, dict) else None
    if (
        not isinstance(entry, dict)
        or entry.get("case") != case.case
        or not isinstance(entry.get("image"), str)
        or not isinstance(warnings, list)
    ):
        logger.warning("%s: damaged or foreign record of an earlier run; converting %s again", path, case.case)
        return None
    return {"status": "skipped", "entry": entry, "warnings": [str(w) for w in warnings]}


def _ignore_interrupt() -> None:
    """Worker initializer: leave SIGINT (Ctrl-C) to the main process, which stops the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _convert_worker(case: ChaosCase, out_dir: str, overwrite: bool) -> dict:
    """One case; bad input and filesystem errors fail only this case, programming errors propagate (traceback)."""
    try:
        return convert_case(case, out_dir, overwrite)
    except InvalidInputError as e:
        return {"status": "failed", "message": str(e)}
    except OSError as e:  # unreadable input, full disk, permissions: this case fails, the others still convert
        where = e.filename or case.dicom_dir
        return {"status": "failed", "message": f"{where}: {e.strerror or e} ({type(e).__name__})"}


def assign_folds(patients: Sequence[str], folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Patient-level folds: shuffle the sorted unique patients with a seeded ``RandomState`` and deal them round-robin.

    CT (``ct_*``) and MR (``mr_*``) patients are dealt separately, CT first, from the same generator, so each fold
    holds patients of both modalities when there are enough. With fewer patients than folds the existing patients
    get folds ``0..n-1`` (a warning says so).

    Args:
        patients: patient ids (duplicates allowed).
        folds: number of folds (>= 1).
        seed: seed of :class:`numpy.random.RandomState`.

    Raises:
        InvalidInputError: if ``folds < 1``.
    """
    if folds < 1:
        raise InvalidInputError(f"--folds {folds}; expected a positive number of folds")
    if not 0 <= seed < 2**32:
        raise InvalidInputError(f"--seed {seed}; expected an integer in 0..2**32-1")
    rng = np.random.RandomState(seed)
    unique = sorted(set(patients), key=natural_key)
    result: dict[str, int] = {}
    for prefix in ("ct_", "mr_", ""):
        group = [p for p in unique if p.startswith(prefix) and p not in result]
        if not group:
            continue
        if len(group) < folds:
            kind = {"ct_": "CT ", "mr_": "MR "}.get(prefix, "")
            n = len(group)
            logger.warning("only %d %spatient(s) for %d folds: folds 0..%d used", n, kind, folds, n - 1)
        for i, idx in enumerate(rng.permutation(len(group))):
            result[group[idx]] = i % folds
    return result


def _datalist(training: list[dict], test: list[dict]) -> dict:
    return {
        "name": "CHAOS",
        "description": "CHAOS (ISBI 2019) converted by scse_monai: NIfTI volumes, one label space for CT and MR "
        "(see labels), patient-level folds",
        "reference": "Kavur et al., Medical Image Analysis 69 (2021) 101950, https://arxiv.org/abs/2001.06535",
        "licence": LICENCE,
        "tensorImageSize": "3D",
        "labels": {str(value): name for name, value in LABELS.items()},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }


def convert_chaos(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    modality: str = "all",
    folds: int = 5,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert every selected case of a CHAOS root; bad cases are reported, the others still convert.

    Args:
        root: the CHAOS root (see :func:`~scse_monai.apps.chaos.discover.discover_cases`). Never modified.
        out_dir: output folder (``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``datalist.json``).
        modality: ``"ct"``, ``"t1dual"``, ``"t2spir"`` or ``"all"``.
        folds: number of patient-level folds.
        seed: fold assignment seed.
        workers: processes (1 converts in this process).
        overwrite: re-convert cases whose outputs already exist.
        progress: show a tqdm bar over cases.

    Raises:
        InvalidInputError: if ``root`` holds no CHAOS case or an argument is invalid.
    """
    if modality not in MODALITIES:
        raise InvalidInputError(f"--modality {modality!r}; expected one of {sorted(MODALITIES)}")
    if workers < 1:
        raise InvalidInputError(f"--workers {workers}; expected a positive number")
    root, out_dir = Path(root), Path(out_dir)
    # The inputs are the Train_Sets/Test_Sets folders: an output beside them in the root is fine, inside them is not.
    inputs = {f"CHAOS set {p.name}": p for p, _ in find_set_roots(root)} if root.is_dir() else {}
    check_output_path(out_dir, inputs, kind="folder")
    if root.resolve() == out_dir.resolve():
        raise InvalidInputError(f"output is the input CHAOS root {root}; expected another folder", out_dir)
    all_cases = discover_cases(root)
    # Folds over every training patient of the root (not only the converted ones), so they do not change when one
    # case fails or another modality is selected.
    fold_of = assign_folds([c.patient for c in all_cases if c.split == "train"], folds, seed)
    cases = [c for c in all_cases if c.modality in MODALITIES[modality]]
    if not cases:
        present = sorted({c.modality for c in all_cases})
        raise InvalidInputError(f"no {modality} case found; the root holds {present}", root)
    with output_lock(out_dir, "convert"):
        return _convert_cases(cases, out_dir, fold_of, workers, overwrite, progress)


def _convert_cases(
    cases: list[ChaosCase], out_dir: Path, fold_of: dict[str, int], workers: int, overwrite: bool, progress: bool
) -> ConversionReport:
    from tqdm.auto import tqdm

    report = ConversionReport()
    results: dict[tuple[str, str], dict] = {}
    bar = tqdm(total=len(cases), desc="convert", unit="case", disable=not progress)

    def collect(case: ChaosCase, result: dict) -> None:
        results[(case.split, case.case)] = result
        if result["status"] == "failed":
            report.failed.append((case.case, result["message"]))
            tqdm.write(f"FAILED {case.case}: {result['message']}", file=sys.stderr)
        else:
            getattr(report, result["status"]).append(case.case)
            for w in result["warnings"]:
                logger.warning("%s: %s", case.case, w)
                report.warnings.append(f"{case.case}: {w}")
        bar.update(1)

    try:
        if workers == 1:
            for case in cases:
                collect(case, _convert_worker(case, str(out_dir), overwrite))
        else:
            # Ctrl-C reaches the whole process group: workers ignore it and finish their case (its files are
            # written atomically), queued cases are cancelled, and the interrupt ends the run from here
            with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupt) as pool:
                futures = {pool.submit(_convert_worker, c, str(out_dir), overwrite): c for c in cases}
                try:
                    for future in as_completed(futures):
                        collect(futures[future], future.result())
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    training, test = [], []
    for case in cases:  # discovery order, independent of worker completion order
        result = results.get((case.split, case.case))
        if result is None or result["status"] == "failed":
            continue
        entry = dict(result["entry"])
        if case.split == "train":
            entry["fold"] = fold_of[case.patient]
            training.append(entry)
        else:
            entry.pop("label", None)
            test.append(entry)
    if training or test:
        report.datalist = out_dir / DATALIST_NAME
        remove_stale_temporaries([report.datalist])
        atomic_write_text(report.datalist, json.dumps(_datalist(training, test), indent=2) + "\n")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai convert``."""
    parser.add_argument("root", type=Path, help="CHAOS root (holding Train_Sets/ and/or Test_Sets/)")
    parser.add_argument("out_dir", type=Path, help="output folder for imagesTr/, labelsTr/, imagesTs/, datalist.json")
    parser.add_argument("--modality", choices=sorted(MODALITIES), default="all", help="which series to convert")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-level folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="re-convert cases whose outputs already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai convert``; 0 if every case converted (or was complete), 1 if some failed."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = convert_chaos(
        args.root,
        args.out_dir,
        modality=args.modality,
        folds=args.folds,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.summary())
    return 0 if report.ok else 1
