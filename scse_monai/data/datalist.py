"""Selecting training, validation and test cases from a converted ``datalist.json``.

Three disjoint patient groups (folds are per patient, so all sequences of a patient share one group): the training
folds, the validation fold ``fold`` (model selection, ``models/model.pt``) and the test fold ``test_fold`` (the only
cases whose numbers are reported, by ``evaluate.json``). :func:`select_split` gives each group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist

from scse_monai.errors import InvalidInputError

__all__ = ["select_cases", "select_split", "datalist_folds", "next_fold", "SPLITS"]

#: the three patient groups of an experiment.
SPLITS = ("training", "validation", "test")


def _entries(path: Path) -> list[dict]:
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
