"""Corpus, round 3: experiment designs that would lie (scse_monai.apps.design, checked before any run of ``ablate``).

A patient split over folds (the by-patient cross-validation leaks), a fold, variant or seed counted twice, seeds that
MONAI maps onto one another (modulo 2**32), and overrides of keys that no bundle config has, or that the ablation
sets itself, must be refused with the option, key or patient named, before a folder or a file is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scse_monai.apps.design import check_ablation_design, check_override_keys, check_patient_folds, check_seeds
from scse_monai.errors import InvalidInputError

from .corpus import record, run_case

CATEGORY = "experiment designs"


@pytest.fixture
def data(phantom_data: Path, tmp_path: Path) -> Path:
    """A private copy of the converted phantom (3 patient-level folds)."""
    shutil.copytree(phantom_data, tmp_path / "data")
    return tmp_path / "data"


def _argv(data: Path, out: Path, *extra: str) -> list:
    base = {"--variants": ["none", "sse"], "--folds": ["0"], "--seeds": ["0"]}
    given = set(extra)
    argv: list = ["ablate", data, "--out", out, "--config", "demo_quick", "--quiet"]
    for option, values in base.items():
        if option not in given:
            argv += [option, *values]
    return argv + list(extra)


# (extra arguments, names the error line must hold)
CASES = {
    "repeated test fold": (["--folds", "0", "0"], ["--folds", "repeats [0]"]),
    "repeated variant": (["--variants", "none", "none"], ["--variants", "repeats ['none']"]),
    "repeated seed": (["--seeds", "1", "1"], ["--seeds", "repeats [1]"]),
    "seeds equal modulo 2**32": (["--seeds", "0", "4294967296"], ["--seeds", "4294967296"]),
    "negative seed": (["--seeds", "-1", "4294967295"], ["--seeds", "-1"]),
    "unknown override key": (["--set", "epoch=3"], ["'epoch'", "epochs"]),
    "unknown nested key": (["--set", "network_def#chanels=[8, 16]"], ["'network_def#chanels'", "channels"]),
    "key below a value": (["--set", "epochs#x=1"], ["'epochs#x'", "a value, not a section"]),
    "override of the seed": (["--set", "seed=7"], ["'seed'", "--seeds"]),
    "override of the test fold": (["--set", "test_fold=2"], ["'test_fold'", "--folds"]),
    "override of the variant's key": (["--set", "network_def#se=null"], ["'network_def#se'", "--variants"]),
    "unknown variant": (["--variants", "none", "cse2"], ["--variants", "cse2"]),
    "fold not in the datalist": (["--folds", "0", "7"], ["--folds", "[0, 1, 2]"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_ablate_design(name: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    extra, names = CASES[name]
    run_case(CATEGORY, _argv(data, tmp_path / "out", *extra), capsys, names=names, protect=[data],
             sandbox=tmp_path)


def _split_patient(data: Path) -> str:
    """Move one MR sequence of a patient into another fold; returns the patient."""
    path = data / "datalist.json"
    content = json.loads(path.read_text())
    mr = [e for e in content["training"] if e["case"].startswith("mr_")]
    victim = mr[0]
    victim["fold"] = (victim["fold"] + 1) % 3
    path.write_text(json.dumps(content))
    return victim["patient"]


def test_ablate_patient_in_two_folds(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    patient = _split_patient(data)
    run_case(CATEGORY, _argv(data, tmp_path / "out"), capsys, names=[f"patient {patient}", "datalist.json"],
             protect=[data], sandbox=tmp_path)


def test_ablate_without_patient_key_uses_the_case(data: Path) -> None:
    """Entries without ``patient`` are their own patient: a valid design is accepted as it is."""
    path = data / "datalist.json"
    content = json.loads(path.read_text())
    for e in content["training"]:
        e.pop("patient", None)
    path.write_text(json.dumps(content))
    assert check_ablation_design(path, ["none", "sse"], [0, 1], [0, 1], ["demo_quick"],
                                 {"epochs": 1, "network_def#channels": [8, 16, 32]}) == ([0, 1, 2], [0, 1])
    record(CATEGORY, "correct result")


def test_design_library_checks(data: Path) -> None:
    datalist = data / "datalist.json"
    assert check_seeds([0, 2**32 - 1]) == [0, 2**32 - 1]
    for seeds, phrase in (([], "empty"), ([True], "integers"), ([1.5], "integers"), ([2**32], "4294967296")):
        with pytest.raises(InvalidInputError, match=phrase):
            check_seeds(seeds)
    check_patient_folds(datalist)
    check_override_keys({"epochs": 1, "network_def#channels": [4, 8, 16], "modalities": ["ct"]}, ["demo_quick"])
    with pytest.raises(InvalidInputError, match="'lr'"):
        check_override_keys({"lr": 1.0})
    with pytest.raises(InvalidInputError, match="set by the experiment"):
        check_override_keys({"fold": 1}, reserved={"fold": "--folds"})
    record(CATEGORY, "correct result")
