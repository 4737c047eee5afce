"""The benchmarks' quick modes run from a checkout and write the documented JSON keys (timings are not asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _assert_finite(result: dict, keys: list[str]) -> None:
    for key in keys:
        assert key in result, key
        assert isinstance(result[key], (int, float)) and math.isfinite(result[key]), (key, result[key])


@pytest.mark.slow
def test_se_overhead_quick(tmp_path):
    result = _run("se_overhead.py", tmp_path)
    _assert_finite(
        result,
        [
            "train_step_ratio",
            "peak_memory_ratio",
            "inference_ratio",
            "naive_train_step_ratio",
            "naive_peak_memory_ratio",
            "naive_inference_ratio",
            "param_overhead_pct",
            "effective_gflops",
            "matmul_peak_gflops",
        ],
    )
    # Facts that do not depend on timing: the two scSE variants have the same parameters, more than UNet.
    assert result["params"]["scse"] == result["params"]["naive"] > result["params"]["unet"]
    assert result["param_overhead_pct"] == pytest.approx(
        100 * (result["params"]["scse"] - result["params"]["unet"]) / result["params"]["unet"]
    )
    # quick mode compiles nothing: the compiled keys are there, as null
    assert result["compiled"] is False
    for key in ("compiled_train_step_ratio", "compiled_peak_memory_ratio", "compiled_inference_ratio",
                "compile_seconds_unet", "compile_seconds_seunet"):
        assert key in result and result[key] is None, key
    # The fused max-out keeps fewer bytes for backward than the plain formula (allocator-independent count).
    assert result["memory"]["scse"]["saved_tensor_bytes"] < result["memory"]["naive"]["saved_tensor_bytes"]


@pytest.mark.slow
def test_volume_inference_quick(tmp_path):
    result = _run("volume_inference.py", tmp_path)
    _assert_finite(result, ["seconds", "slices_per_second", "peak_memory_mb", "peak_rss_mb"])
    assert result["output_shape"][2:] == result["volume_shape"]


@pytest.mark.slow
def test_se_profile_quick(tmp_path):
    result = _run("se_profile.py", tmp_path)
    assert result["compiled"] is False
    for what in ("train", "inference"):
        r = result[what]
        # the groups partition the per-name differences, which add up to the difference of the totals
        assert sum(r["gap_by_group_ms"].values()) == pytest.approx(r["gap_ms"], abs=1e-6)
        assert r["gap_ms"] == pytest.approx(r["total_ms"]["seunet"] - r["total_ms"]["unet"], abs=1e-6)
        assert set(r["gap_by_group_ms"]) <= {"convolution", "matmul", "inductor_kernel", "other"}
        # an op only SEUNet runs (the gates' sigmoid) is profiled for SEUNet and absent from UNet's profile
        assert r["per_name_ms"]["seunet"].get("aten::sigmoid", 0.0) > 0.0
        assert "aten::sigmoid" not in r["per_name_ms"]["unet"]


def test_performance_page_quotes_the_shipped_full_run() -> None:
    """docs/performance.md's results table is ``--table`` of the JSON shipped beside it, and that run was a full one
    (the bundle's batch and image size, compiled variants included) with the six ratio keys."""
    docs = BENCHMARKS.parent / "docs"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "se_overhead.py"), "--table", str(docs / "se_overhead_full.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    table = proc.stdout.strip()
    assert table.count("\n") > 5
    assert table in (docs / "performance.md").read_text()
    result = json.loads((docs / "se_overhead_full.json").read_text())
    assert result["mode"] == "full" and result["compiled"]
    assert result["input_shape"][0] == 16 and result["input_shape"][2:] == [256, 256]
    for prefix in ("", "compiled_"):
        _assert_finite(result, [f"{prefix}train_step_ratio", f"{prefix}peak_memory_ratio", f"{prefix}inference_ratio"])
