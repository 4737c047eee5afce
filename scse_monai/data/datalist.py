"""The one reader of the converter's ``datalist.json`` (MSD/Decathlon style), and the training selection from it.

Every command that reads a datalist (training through the bundle, ``evaluate``, ``export-submission``, the
experiments) goes through :func:`load_datalist`, which checks the structure once: a JSON object whose sections are
lists of objects, file entries that are strings, folds that are integers, and case names that are safe as one path
component (names become output file and folder names: ``"chaos_id": "../../x"`` must not write outside the output).

Three disjoint patient groups (folds are per patient, so all sequences of a patient share one group): the training
folds, the validation fold ``fold`` (model selection, ``models/model.pt``) and the test fold ``test_fold`` (the only
cases whose numbers are reported, by ``evaluate.json``). :func:`select_split` gives each group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import check_safe_name

__all__ = [
    "load_datalist",
    "datalist_entries",
    "entry_path",
    "select_cases",
    "select_split",
    "datalist_folds",
    "next_fold",
    "SECTIONS",
    "SPLITS",
]

#: the datalist sections the package knows; others are ignored.
SECTIONS = ("training", "validation", "test")
#: the three patient groups of an experiment.
SPLITS = SECTIONS
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
    if path.exists() and not path.is_file():  # a FIFO named datalist.json would block the read for ever
        raise InvalidInputError("datalist is not a regular file (a folder, FIFO, socket or device); expected "
                                "datalist.json", path)
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


def _entries(path: Path) -> list[dict]:
    from monai.data import load_decathlon_datalist

    load_datalist(path)  # structure checked here, with the file named, before MONAI reads it
    try:
        return load_decathlon_datalist(str(path), True, "training", str(path.parent))
    except (OSError, ValueError, KeyError) as e:
        raise InvalidInputError(f"cannot read a Decathlon-style datalist with a 'training' list ({e})", path) from e


def select_cases(
    datalist: str | os.PathLike,
    fold: int,
    modalities: Sequence[str] | None = None,
    validation: bool = False,
    keys: Sequence[str] = ("image", "label", "modality"),
    exclude_folds: Sequence[int] = (),
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
        exclude_folds: further folds left out of the training selection (the test fold); their entries are not
            even checked for files.

    Raises:
        InvalidInputError: when the datalist is unreadable, the selection is empty (naming the folds and modalities
            that exist), or an image/label file is missing.
    """
    path = Path(datalist)
    entries = _entries(path)
    chosen = [
        d for d in entries
        if (d.get("fold") == fold) == validation and (modalities is None or d.get("modality") in modalities)
        and (validation or d.get("fold") not in exclude_folds)
    ]
    if not chosen:
        folds = sorted({d.get("fold") for d in entries}, key=str)
        found = sorted({str(d.get("modality")) for d in entries})
        part = "validation fold" if validation else "training folds (all but"
        others = "".join(f", {f}" for f in exclude_folds) if not validation else ""
        raise InvalidInputError(
            f"no cases for the {part} {fold}{others}{'' if validation else ')'} with modalities {modalities}; the "
            f"datalist has {len(entries)} training cases, folds {folds}, modalities {found}",
            path,
        )
    for d in chosen:
        for key in ("image", "label"):
            if key in keys and not Path(d[key]).exists():
                raise InvalidInputError(f"{key} file of case {d.get('case', '?')} is missing: {d[key]}", path)
    return [{k: d.get(k, "auto") for k in keys} for d in chosen]


def datalist_folds(datalist: str | os.PathLike) -> list:
    """The folds of a datalist's training entries, sorted.

    Raises:
        InvalidInputError: when the datalist is unreadable.
    """
    return sorted({d.get("fold") for d in _entries(Path(datalist))}, key=str)


def next_fold(datalist: str | os.PathLike, fold: int) -> int | None:
    """The fold after ``fold`` among the datalist's folds (cyclically): the bundle's default test fold.

    Returns ``None`` when the datalist has fewer than three folds: then there are only training and validation
    cases, and :func:`select_split` refuses to give test cases (a test fold must never take part in training or
    model selection).

    Raises:
        InvalidInputError: when the datalist is unreadable or ``fold`` is not one of its folds.
    """
    folds = datalist_folds(datalist)
    if fold not in folds:
        raise InvalidInputError(f"validation fold {fold} is not in the datalist; it has folds {folds}", datalist)
    if len(folds) < 3:
        return None
    return folds[(folds.index(fold) + 1) % len(folds)]


def select_split(
    datalist: str | os.PathLike,
    split: str,
    fold: int,
    test_fold: int | None,
    modalities: Sequence[str] | None = None,
    keys: Sequence[str] = ("image", "label", "modality"),
) -> list[dict]:
    """The cases of one patient group, checked like :func:`select_cases`.

    ``"training"``: all folds but ``fold`` and ``test_fold``; ``"validation"``: fold ``fold``; ``"test"``: fold
    ``test_fold``. Entries of the other groups are not touched (not even checked for files).

    Args:
        datalist: the converter's ``datalist.json``.
        split: one of :data:`SPLITS`.
        fold: the validation fold (model selection).
        test_fold: the test fold (reported numbers); ``None``: no test group (``"test"`` then raises).
        modalities: keep only these modalities; ``None`` keeps all.
        keys: entry keys to keep.

    Raises:
        InvalidInputError: for an unknown split, ``fold == test_fold``, no test fold for ``"test"``, an empty group
            or a missing file (naming the datalist).
    """
    if split not in SPLITS:
        raise InvalidInputError(f"split {split!r}; expected one of {list(SPLITS)}")
    if test_fold is not None and test_fold == fold:
        raise InvalidInputError(
            f"validation fold and test fold are both {fold}: the model would be selected on the cases it is "
            "reported on; choose another test_fold", datalist)
    if split == "validation":
        return select_cases(datalist, fold, modalities, validation=True, keys=keys)
    if split == "test":
        if test_fold is None:
            raise InvalidInputError(
                f"no test fold: the datalist has folds {datalist_folds(datalist)}; three patient-level folds are "
                "needed (training, validation for model selection, test for the reported numbers): convert with "
                "--folds 3 or more, or set test_fold", datalist)
        return select_cases(datalist, test_fold, modalities, validation=True, keys=keys)
    return select_cases(datalist, fold, modalities, keys=keys, exclude_folds=() if test_fold is None else (test_fold,))
