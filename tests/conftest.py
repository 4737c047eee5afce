"""Shared fixtures: a small converted phantom data set and the bundle's paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
SHARED = REPO.parent / "shared"

# The bundle shrunk to seconds on a CPU (phantom-sized spacing and patches, a small network): the same override file
# `scse-monai demo --quick` merges onto train.json, read here rather than copied.
TINY_BUNDLE_OVERRIDES = json.loads((BUNDLE / "configs" / "demo_quick.json").read_text())


@pytest.fixture(scope="session", autouse=True)
def _kernel_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """Build the fused CPU kernel into this session's temporary folder, not the user's cache (subprocesses inherit
    the variable); the environment and the loaded kernel are restored afterwards."""
    from scse_monai.networks.blocks import cpu_kernel

    before = os.environ.get(cpu_kernel.ENV_CACHE_DIR)
    os.environ[cpu_kernel.ENV_CACHE_DIR] = str(tmp_path_factory.mktemp("kernel_cache"))
    cpu_kernel.load.cache_clear()
    yield
    if before is None:
        del os.environ[cpu_kernel.ENV_CACHE_DIR]
    else:
        os.environ[cpu_kernel.ENV_CACHE_DIR] = before
    cpu_kernel.load.cache_clear()


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
