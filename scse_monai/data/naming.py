"""One name per image series: the CHAOS case names, and file-name-safe names for any other input.

The CHAOS layout (Kavur et al. 2021; Zenodo record 3362845) is defined here once, for the converter
(:func:`scse_monai.apps.chaos.discover.discover_cases`), batch inference (:func:`series_name`, used by
:func:`scse_monai.data.list_inference_inputs`) and so ``scse-monai export-submission``, which finds the predictions
by these case names::

    CT/<id>/DICOM_anon                        -> ct_<id>
    MR/<id>/T1DUAL/DICOM_anon/InPhase         -> mr_<id>_t1dual_in
    MR/<id>/T1DUAL/DICOM_anon/OutPhase        -> mr_<id>_t1dual_out
    MR/<id>/T2SPIR/DICOM_anon                 -> mr_<id>_t2spir

Every CHAOS series folder is called ``DICOM_anon`` (or ``InPhase``/``OutPhase``), so the folder name alone would give
all CT cases the same output. Other DICOM series are named from their header (PatientID, SeriesNumber), NIfTI files
by their stem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["CHAOS_ID", "CHAOS_SERIES_DIRS", "chaos_case_name", "chaos_series_dir", "chaos_series_of",
           "output_name_formatter", "safe_name", "series_name"]

#: a CHAOS case folder name (the organisers use numbers; letters, digits, '_' and '-' are accepted).
CHAOS_ID = re.compile(r"^[A-Za-z0-9_-]+$")
#: CHAOS modality -> folder of its DICOM slices below ``Train_Sets``/``Test_Sets`` (``{id}``: the case folder).
CHAOS_SERIES_DIRS: dict[str, tuple[str, ...]] = {
    "ct": ("CT", "{id}", "DICOM_anon"),
    "t1dual_in": ("MR", "{id}", "T1DUAL", "DICOM_anon", "InPhase"),
    "t1dual_out": ("MR", "{id}", "T1DUAL", "DICOM_anon", "OutPhase"),
    "t2spir": ("MR", "{id}", "T2SPIR", "DICOM_anon"),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def chaos_case_name(modality: str, chaos_id: str) -> str:
    """The converter's case name: ``ct_<id>``, ``mr_<id>_t1dual_in``, ``mr_<id>_t1dual_out`` or ``mr_<id>_t2spir``."""
    if modality not in CHAOS_SERIES_DIRS:
        raise ValueError(f"modality {modality!r}; expected one of {', '.join(CHAOS_SERIES_DIRS)}")
    return f"ct_{chaos_id}" if modality == "ct" else f"mr_{chaos_id}_{modality}"


def chaos_series_dir(set_root: str | os.PathLike, modality: str, chaos_id: str) -> Path:
    """The DICOM folder of a CHAOS series below a ``Train_Sets``/``Test_Sets`` folder."""
    return Path(set_root).joinpath(*(p.format(id=chaos_id) for p in CHAOS_SERIES_DIRS[modality]))


def chaos_series_of(folder: str | os.PathLike) -> tuple[str, str] | None:
    """``(modality, chaos_id)`` if ``folder`` ends like a CHAOS series folder (module docstring), else ``None``."""
    parts = Path(os.path.abspath(folder)).parts
    for modality, layout in CHAOS_SERIES_DIRS.items():
        tail = parts[-len(layout):]
        if len(tail) != len(layout):
            continue
        chaos_id = tail[layout.index("{id}")]
        if CHAOS_ID.fullmatch(chaos_id) and all(p == "{id}" or p == t for p, t in zip(layout, tail, strict=True)):
            return modality, chaos_id
    return None


def safe_name(text: str) -> str:
    """``text`` as a plain file name (``""`` if nothing is left).

    Runs of characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``; leading dots and underscores
    and trailing underscores are dropped.
    """
    return _UNSAFE.sub("_", text.strip()).lstrip("._").rstrip("_")


def _header_name(folder: Path) -> str:
    """``<PatientID>_<SeriesNumber>`` (what is present) from the first slice in name order, file-name safe."""
    import pydicom

    from scse_monai.data.dicom import list_slices

    ds = pydicom.dcmread(str(list_slices(folder)[0]), stop_before_pixels=True)
    patient = safe_name(str(ds.get("PatientID", "") or ""))
    number = ds.get("SeriesNumber", None)
    series = f"s{number}" if number not in (None, "") else ""
    return "_".join(p for p in (patient, series) if p)


def series_name(path: str | os.PathLike) -> str:
    """The output name of one inference input (a NIfTI file or a DICOM series folder).

    - a CHAOS series folder: the converter's case name (``ct_1``, ``mr_1_t1dual_in``, ...);
    - a NIfTI file: its name without ``.nii``/``.nii.gz``;
    - another DICOM folder: ``<PatientID>_s<SeriesNumber>`` from its header (what is present), made safe for file
      names; without either, the folder name.

    Two inputs can still get the same name (two NIfTI stems, two series without identifiers):
    :func:`scse_monai.data.list_inference_inputs` refuses such a run and names both.
    """
    from scse_monai.utils.io import nifti_stem

    path = Path(path)
    stem = nifti_stem(path.name)
    if stem is not None and not path.is_dir():
        return stem
    chaos = chaos_series_of(path)
    if chaos is not None:
        return chaos_case_name(*chaos)
    return _header_name(path) or safe_name(path.name) or "series"



def output_name_formatter(metadict: dict | None, saver: Any) -> dict:
    """``SaveImage``'s ``output_name_formatter``: the prediction of an input is named :func:`series_name` of it.

    MONAI's default names a prediction after its input's file or folder name, so every CHAOS series (all in folders
    called ``DICOM_anon``) would be written to the same file. The name comes from the input path in the metadata
    (``filename_or_obj``), with the same function :func:`scse_monai.data.list_inference_inputs` checks the names
    with before the run; without a path, MONAI's default applies.
    """
    from monai.data.folder_layout import default_name_formatter

    source = (metadict or {}).get("filename_or_obj")
    if not source or not os.path.exists(str(source)):
        return default_name_formatter(metadict, saver)
    return {"subject": series_name(str(source)), "idx": metadict.get("patch_index")}
