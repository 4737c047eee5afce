"""Regression against the organisers' published result on the real CHAOS CT sample (skipped when it is absent).

emrekavur/CHAOS-evaluation README, ``Data_3D`` (Segmentation vs Ground, geometry from DICOM_anon), identical for the
MATLAB, Python and Julia code: DICE 0.978, RAVD 0.665 %, ASSD 0.734 mm, MSSD 14 mm; CHAOS score 89.08.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scse_monai.cli import main

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / ".." / "shared" / "data" / "chaos_ct_sample"

pytestmark = pytest.mark.skipif(
    not (SAMPLE / "Ground").is_dir() or not (SAMPLE / "Segmentation").is_dir() or not (SAMPLE / "DICOM_anon").is_dir(),
    reason="real CHAOS CT sample (../shared/data/chaos_ct_sample) not available",
)


def _args(out: Path) -> list[str]:
    return [
        "evaluate",
        "--ground",
        str(SAMPLE / "Ground"),
        "--pred",
        str(SAMPLE / "Segmentation"),
        "--dicom",
        str(SAMPLE / "DICOM_anon"),
        "--json",
        str(out),
    ]


def _check(res: dict) -> None:
    liver = res["liver"]
    assert round(liver["dice"], 3) == 0.978
    assert round(liver["ravd"], 3) == 0.665
    assert round(liver["assd"], 3) == 0.734
    assert round(liver["mssd"], 0) == 14
    assert round(liver["score"], 2) == 89.08
    assert res["mean"] == liver  # single organ: the mean is the liver


def test_official_sample_result_in_process(tmp_path, capsys):
    assert main(_args(tmp_path / "out.json")) == 0
    _check(json.loads((tmp_path / "out.json").read_text()))
    assert "0.9784" in capsys.readouterr().out


def test_official_sample_result_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scse_monai", *_args(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    _check(json.loads((tmp_path / "out.json").read_text()))
