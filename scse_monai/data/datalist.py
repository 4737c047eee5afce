"""The one reader of the converter's ``datalist.json`` (MSD/Decathlon style), and the training selection from it.

Every command that reads a datalist (training through the bundle, ``evaluate``, ``export-submission``, the
experiments) goes through :func:`load_datalist`, which checks the structure once: a JSON object whose sections are
lists of objects, file entries that are strings, folds that are integers, and case names that are safe as one path
component (names become output file and folder names: ``"chaos_id": "../../x"`` must not write outside the output).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import check_safe_name

__all__ = ["load_datalist", "datalist_entries", "entry_path", "select_cases", "SECTIONS"]

#: the datalist sections the package knows; others are ignored.
SECTIONS = ("training", "validation", "test")
_FILE_KEYS = ("image", "label")
_NAME_KEYS = ("case", "chaos_id", "patient")


def _check_entry(entry: object, section: str, index: int, path: Path) -> dict:
    where = f"entry {index} of {section!r}"
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{where} is {type(entry).__name__}; expected an object", path)
    for key in _FILE_KEYS:
        value = entry.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise InvalidInputError(f"{where}: {key!r} is {value!r}; expected a file path (string)", path)
    for key in _NAME_KEYS:
        if entry.get(key) is not None:
            check_safe_name(entry[key], f"{where}: {key!r}", path)
    fold = entry.get("fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise InvalidInputError(f"{where}: 'fold' is {fold!r}; expected an integer", path)
    return entry


def load_datalist(path: str | os.PathLike) -> dict:
    """Read and check a ``datalist.json``.

    Returns:
        The JSON object; its known sections (:data:`SECTIONS`) are lists of checked entries.

    Raises:
        InvalidInputError: naming the file when it is missing, unreadable, not JSON, not an object, a section is not
            a list of objects, a file entry is not a string, a fold not an integer, or a name unsafe as a file name.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InvalidInputError("datalist not found", path) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"unreadable datalist ({type(e).__name__}: {e}); expected datalist.json"
        raise InvalidInputError(msg, path) from e
    if not isinstance(data, dict):
        raise InvalidInputError("datalist must be a JSON object with 'training'/'test' lists", path)
    for section in SECTIONS:
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise InvalidInputError(f"{section!r} is {type(entries).__name__}; expected a list of entries", path)
        for i, entry in enumerate(entries):
            _check_entry(entry, section, i, path)
    return data


def entry_path(datalist: str | os.PathLike, value: str) -> Path:
    """A file path of an entry: relative paths are relative to the datalist's folder (MONAI's convention)."""
    return Path(datalist).parent / value


def datalist_entries(datalist: str | os.PathLike, sections: Sequence[str] = SECTIONS) -> list[dict]:
    """The checked entries of ``sections`` (in that order), each with a ``"case"`` name.

    An entry without ``"case"`` is named after its label (else image) file, the one way case names come from paths
    (:func:`~scse_monai.utils.io.case_name`).

    Raises:
        InvalidInputError: see :func:`load_datalist`; also for an entry with neither a case name nor a file, and for
            two entries of one case.
    """
    from scse_monai.utils.io import case_name

    data = load_datalist(datalist)
    out: list[dict] = []
    seen: set[str] = set()
    for section in sections:
        for i, entry in enumerate(data.get(section) or []):
            entry = dict(entry)
            if entry.get("case") is None:
                source = entry.get("label") or entry.get("image")
                if not source:
                    raise InvalidInputError(f"entry {i} of {section!r} has no 'case', 'label' or 'image'", datalist)
                entry["case"] = check_safe_name(case_name(source), f"entry {i} of {section!r}: case", datalist)
            entry["case"] = str(entry["case"])
            if entry["case"] in seen:
                raise InvalidInputError(f"case {entry['case']!r} is listed twice; expected one entry per case",
                                        datalist)
            seen.add(entry["case"])
            out.append(entry)
    return out


def select_cases(
    datalist: str | os.PathLike,
    fold: int,
    modalities: Sequence[str] | None = None,
    validation: bool = False,
    keys: Sequence[str] = ("image", "label", "modality"),
) -> list[dict]:
    """The training cases outside ``fold`` (or, with ``validation``, inside it), checked before training starts.

    Folds are per patient (the converter assigns them), so training and validation never share a patient. Only
    ``keys`` are kept: CT and MR entries carry different extra keys, which the default collate cannot stack.

    Args:
        datalist: the converter's ``datalist.json`` (paths inside are relative to its folder).
        fold: the validation fold.
        modalities: keep only these modalities (e.g. ``["ct"]``); ``None`` keeps all.
        validation: select the validation fold instead of the training folds.
        keys: entry keys to keep; a missing ``modality`` becomes ``"auto"``.

    Raises:
        InvalidInputError: when the datalist is unreadable, the selection is empty (naming the folds and modalities
            that exist), or an image/label file is missing.
    """
    from monai.data import load_decathlon_datalist

    path = Path(datalist)
    load_datalist(path)  # structure checked here, with the file named, before MONAI reads it
    try:
        entries = load_decathlon_datalist(str(path), True, "training", str(path.parent))
    except (OSError, ValueError, KeyError) as e:
        raise InvalidInputError(f"cannot read a Decathlon-style datalist with a 'training' list ({e})", path) from e
    chosen = [
        d for d in entries
        if (d.get("fold") == fold) == validation and (modalities is None or d.get("modality") in modalities)
    ]
    if not chosen:
        folds = sorted({d.get("fold") for d in entries}, key=str)
        found = sorted({str(d.get("modality")) for d in entries})
        part = "validation fold" if validation else "training folds (all but"
        raise InvalidInputError(
            f"no cases for the {part} {fold}{'' if validation else ')'} with modalities {modalities}; the datalist "
            f"has {len(entries)} training cases, folds {folds}, modalities {found}",
            path,
        )
    for d in chosen:
        for key in ("image", "label"):
            if key in keys and not Path(d[key]).exists():
                raise InvalidInputError(f"{key} file of case {d.get('case', '?')} is missing: {d[key]}", path)
    return [{k: d.get(k, "auto") for k in keys} for d in chosen]
