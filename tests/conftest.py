"""Shared fixtures: a small converted phantom data set and the bundle's paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
SHARED = REPO.parent / "shared"

# The bundle shrunk to seconds on a CPU (phantom-sized spacing and patches, a small network): the same override file
# `scse-monai demo --quick` merges onto train.json, read here rather than copied.
TINY_BUNDLE_OVERRIDES = json.loads((BUNDLE / "configs" / "demo_quick.json").read_text())


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted phantom (3 CT + 3 MR patients, 3 patient-level folds: training, validation and test groups, one
    CT and one MR patient each); returns the folder of datalist.json."""
    from scse_monai.apps.chaos.convert import convert_chaos
    from scse_monai.apps.chaos.phantom import make_phantom

    base = tmp_path_factory.mktemp("phantom")
    root = make_phantom(base / "raw", n_ct=3, n_mr=3, seed=0)
    report = convert_chaos(root, base / "data", folds=3, seed=0, progress=False)
    assert not report.failed, report.failed
    return base / "data"
