from __future__ import annotations

from pathlib import Path

import pytest
from parameterized import parameterized

from scse_monai.apps.chaos.discover import discover_cases
from scse_monai.errors import InvalidInputError


def make_tree(set_dir: Path, ground: bool = True) -> None:
    for cid in ("10", "2"):
        (set_dir / "CT" / cid / "DICOM_anon").mkdir(parents=True)
        if ground:
            (set_dir / "CT" / cid / "Ground").mkdir()
    mr = set_dir / "MR" / "5"
    for sub in ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/DICOM_anon/OutPhase", "T2SPIR/DICOM_anon"):
        (mr / sub).mkdir(parents=True)
    (set_dir / "CT" / ".hidden").mkdir()
    (set_dir / "CT" / "readme.txt").write_text("x")


@parameterized.expand([["CHAOS_Train_Sets/Train_Sets", ""], ["Train_Sets", ""], ["Train_Sets", "Train_Sets"]])
def test_train_layouts(set_path, root_suffix):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        make_tree(base / set_path)
        root = base / root_suffix if root_suffix else base
        cases = discover_cases(root)
        assert [c.case for c in cases] == [
            "ct_2", "ct_10", "mr_5_t1dual_in", "mr_5_t1dual_out", "mr_5_t2spir",
        ]  # fmt: skip
        assert {c.split for c in cases} == {"train"}
        ct2 = cases[0]
        assert ct2.patient == "ct_2" and ct2.chaos_id == "2" and ct2.modality == "ct"
        assert ct2.ground_dir == base / set_path / "CT" / "2" / "Ground"
        prefix = "" if root_suffix else set_path + "/"
        assert ct2.source == f"{prefix}CT/2/DICOM_anon"
        mr_in = cases[2]
        assert mr_in.patient == "mr_5" and mr_in.modality == "t1dual_in"
        assert mr_in.dicom_dir.name == "InPhase" and mr_in.ground_dir.parts[-2:] == ("T1DUAL", "Ground")
        assert cases[4].dicom_dir.parts[-2:] == ("T2SPIR", "DICOM_anon")


def test_train_and_test_sets(tmp_path):
    make_tree(tmp_path / "Train_Sets")
    make_tree(tmp_path / "CHAOS_Test_Sets" / "Test_Sets", ground=False)
    cases = discover_cases(tmp_path)
    test = [c for c in cases if c.split == "test"]
    assert len(test) == 5 and all(c.ground_dir is None for c in test)
    assert test[0].source == "CHAOS_Test_Sets/Test_Sets/CT/2/DICOM_anon"
    assert len(cases) == 10


def test_not_chaos(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InvalidInputError, match=rf"{tmp_path}: no CHAOS case found; expected a CHAOS root"):
        discover_cases(tmp_path)
    with pytest.raises(InvalidInputError, match="not a folder"):
        discover_cases(tmp_path / "missing")
    (tmp_path / "Train_Sets" / "CT").mkdir(parents=True)  # layout but no case folder
    with pytest.raises(InvalidInputError, match="no CHAOS case found"):
        discover_cases(tmp_path)
