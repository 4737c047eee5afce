"""Shared fixtures: a small converted phantom data set and the bundle's paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
SHARED = REPO.parent / "shared"

# Overrides that shrink the bundle to seconds on a CPU: phantom-sized spacing and patches, a small network.
TINY_BUNDLE_OVERRIDES = {
    "epochs": 1,
    "pixdim": [6.0, 6.0],
    "roi_size": [64, 64],
    "batch_size": 2,
    "num_samples": 2,
    "cache_rate": 0.0,
    "num_workers": 0,
    "network_def#channels": [8, 16, 32, 64],
    "network_def#strides": [2, 2, 2],
    "network_def#num_res_units": 1,
}


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted phantom (2 CT + 2 MR patients, 2 patient-level folds); returns the folder of datalist.json."""
    from scse_monai.apps.chaos.convert import convert_chaos
    from scse_monai.apps.chaos.phantom import make_phantom

    base = tmp_path_factory.mktemp("phantom")
    root = make_phantom(base / "raw", n_ct=2, n_mr=2, seed=0)
    report = convert_chaos(root, base / "data", folds=2, seed=0, progress=False)
    assert not report.failed, report.failed
    return base / "data"
