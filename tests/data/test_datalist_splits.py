"""Training / validation / test groups of a datalist by patient-level fold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scse_monai.data import datalist_folds, next_fold, select_split
from scse_monai.errors import InvalidInputError


def _datalist(tmp_path: Path, folds: int) -> Path:
    entries = []
    for i in range(2 * folds):
        case = f"ct_{i}"
        for key in ("image", "label"):
            (tmp_path / f"{case}_{key}.nii.gz").write_bytes(b"")
        entries.append({"image": f"{case}_image.nii.gz", "label": f"{case}_label.nii.gz", "case": case,
                        "modality": "ct", "fold": i % folds})
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": entries}))
    return path


def test_three_disjoint_groups(tmp_path: Path) -> None:
    dl = _datalist(tmp_path, 4)
    assert datalist_folds(dl) == [0, 1, 2, 3]
    groups = {s: [d["case"] for d in select_split(dl, s, 1, 3, keys=("case",))]
              for s in ("training", "validation", "test")}
    assert groups == {"training": ["ct_0", "ct_2", "ct_4", "ct_6"], "validation": ["ct_1", "ct_5"],
                      "test": ["ct_3", "ct_7"]}


def test_training_never_touches_the_test_fold(tmp_path: Path) -> None:
    dl = _datalist(tmp_path, 3)
    for case in ("ct_2", "ct_5"):  # fold 2
        (tmp_path / f"{case}_image.nii.gz").unlink()
    assert len(select_split(dl, "training", 0, 2)) == 2 and len(select_split(dl, "validation", 0, 2)) == 2
    with pytest.raises(InvalidInputError, match="image file of case ct_2 is missing"):
        select_split(dl, "test", 0, 2)
    with pytest.raises(InvalidInputError, match="missing"):
        select_split(dl, "training", 0, 1)


def test_next_fold_and_refusals(tmp_path: Path) -> None:
    dl3 = _datalist(tmp_path, 3)
    assert [next_fold(dl3, f) for f in (0, 1, 2)] == [1, 2, 0]
    with pytest.raises(InvalidInputError, match="fold 5 is not in the datalist"):
        next_fold(dl3, 5)
    with pytest.raises(InvalidInputError, match="both 1"):
        select_split(dl3, "training", 1, 1)
    with pytest.raises(InvalidInputError, match="split"):
        select_split(dl3, "train", 0, 1)
    sub = tmp_path / "two"
    sub.mkdir()
    dl2 = _datalist(sub, 2)
    assert next_fold(dl2, 0) is None
    assert len(select_split(dl2, "training", 0, None)) == 2  # two groups only: training and validation
    with pytest.raises(InvalidInputError, match="no test fold.*--folds 3"):
        select_split(dl2, "test", 0, None)
