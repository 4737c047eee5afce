"""Selecting training and validation cases from a converted ``datalist.json``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist

from scse_monai.errors import InvalidInputError

__all__ = ["select_cases"]


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
    path = Path(datalist)
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
