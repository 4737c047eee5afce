"""Paired statistics: bootstrap CI and Wilcoxon signed-rank against independent computations."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from scse_monai.apps.stats import MIN_TEST_CASES, average_over_seeds, compare_networks, mean_sd, paired_comparison


def _exact_signed_rank_p(diff: np.ndarray) -> float:
    """Two-sided exact p of the signed-rank statistic by enumerating all 2^n sign patterns (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(diff))) + 1
    observed = ranks[diff > 0].sum()
    stats = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in product([0, 1], repeat=len(diff))]
    mean = len(diff) * (len(diff) + 1) / 4
    return float(np.mean([abs(t - mean) >= abs(observed - mean) for t in stats]))


def test_paired_comparison_matches_exact_enumeration() -> None:
    base = {f"c{i}": 0.5 for i in range(8)}
    deltas = [0.11, -0.02, 0.05, 0.31, 0.07, -0.13, 0.21, 0.17]
    var = {c: 0.5 + d for c, d in zip(base, deltas, strict=True)}
    out = paired_comparison(base, var, "dice")
    diff = np.array(deltas)
    assert out["n_cases"] == 8 and out["mean_difference"] == pytest.approx(diff.mean())
    assert out["p_value"] == pytest.approx(_exact_signed_rank_p(diff))
    low, high = out["ci95"]
    assert low < diff.mean() < high and diff.min() <= low and high <= diff.max()
    assert out["reason"] is None and "Wilcoxon" in out["test"]
    assert paired_comparison(base, var, "dice") == out  # seeded bootstrap: reproducible


def test_all_positive_differences_give_the_smallest_p() -> None:
    n = MIN_TEST_CASES
    out = paired_comparison({str(i): 0.0 for i in range(n)}, {str(i): 1.0 + i for i in range(n)}, "score")
    assert out["p_value"] == pytest.approx(2 / 2**n) and out["p_value"] < 0.05


def test_too_few_cases_and_zero_differences_have_no_p_value() -> None:
    few = paired_comparison({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.2, "b": 0.4, "c": 0.9, "x": 1.0}, "dice")
    assert few["p_value"] is None and few["n_cases"] == 3 and few["cases"] == ["a", "b", "c"]
    assert "too few cases" in few["reason"] and "0.25" in few["reason"]
    assert few["mean_difference"] == pytest.approx(0.3) and few["ci95"] is not None
    zeros = paired_comparison({str(i): 0.5 for i in range(7)}, {str(i): 0.5 for i in range(7)}, "dice")
    assert zeros["p_value"] is None and "zero" in zeros["reason"] and zeros["ci95"] == [0.0, 0.0]
    nan = paired_comparison({"a": math.nan, "b": 1.0}, {"a": 1.0, "b": None}, "assd")
    assert nan["n_cases"] == 0 and nan["mean_difference"] is None and nan["ci95"] is None


def test_compare_networks_per_organ_and_overall() -> None:
    def case(d_liver: float, d_spleen: float | None) -> dict:
        organs = {"liver": {"dice": d_liver, "score": 100 * d_liver}}
        if d_spleen is not None:
            organs["spleen"] = {"dice": d_spleen, "score": 100 * d_spleen}
        dice = [r["dice"] for r in organs.values()]
        organs["mean"] = {"dice": float(np.mean(dice)), "score": 100 * float(np.mean(dice))}
        return organs

    base = {"ct_1": case(0.8, None), "mr_1": case(0.7, 0.5)}
    var = {"ct_1": case(0.9, None), "mr_1": case(0.8, 0.7)}
    out = compare_networks(base, var, ["liver", "spleen"])
    assert [(c["metric"], c["organ"], c["n_cases"]) for c in out] == [
        ("dice", "liver", 2), ("dice", "spleen", 1), ("dice", "overall", 2),
        ("score", "liver", 2), ("score", "spleen", 1), ("score", "overall", 2)]
    assert out[2]["mean_difference"] == pytest.approx(np.mean([0.1, 0.75 - 0.6]))
    assert out[3]["mean_difference"] == pytest.approx(10.0)


def test_average_over_seeds_skips_non_finite() -> None:
    per_seed = {0: {"a": {"liver": {"dice": 0.6, "assd": math.inf}}},
                1: {"a": {"liver": {"dice": 0.8, "assd": 2.0}}, "b": {"liver": {"dice": 0.5, "assd": math.nan}}}}
    out = average_over_seeds(per_seed)
    assert out["a"]["liver"] == {"dice": pytest.approx(0.7), "assd": 2.0}
    assert out["b"]["liver"]["dice"] == 0.5 and math.isnan(out["b"]["liver"]["assd"])


def test_mean_sd_matches_numpy_and_skips_non_finite() -> None:
    m, sd = mean_sd([0.5, 0.7, 0.9, float("nan"), None])
    assert m == pytest.approx(np.mean([0.5, 0.7, 0.9])) and sd == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert mean_sd([0.3]) == (0.3, 0.0)
    assert all(math.isnan(v) for v in mean_sd([None]))


def test_bootstrap_interval_against_its_exact_and_normal_limits() -> None:
    """Two differences 1 and 3: resampled means are 1, 2, 3 with probabilities 1/4, 1/2, 1/4, so the percentile
    interval is [1, 3]. Many normal differences: the interval approaches mean -/+ 1.96 sd / sqrt(n)."""
    two = paired_comparison({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 3.0}, "dice")
    assert two["ci95"] == [1.0, 3.0]
    diff = np.random.default_rng(1).normal(0.05, 0.1, size=400)
    out = paired_comparison({str(i): 0.0 for i in range(400)}, {str(i): float(d) for i, d in enumerate(diff)}, "dice")
    half = 1.96 * diff.std(ddof=1) / math.sqrt(400)
    assert out["ci95"] == pytest.approx([diff.mean() - half, diff.mean() + half], abs=0.1 * half)
    assert paired_comparison({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 3.0}, "dice", seed=1)["ci95"] == [1.0, 3.0]


def test_shipped_demo_comparisons_are_reproduced() -> None:
    """``docs/demo/results.json`` (README's figures): recomputed from its per-case values, every field agrees (CIs to
    1e-12). The hand-written bootstrap that :func:`scipy.stats.bootstrap` replaced reproduced the earlier shipped run
    the same way."""
    import json
    from pathlib import Path

    from scse_monai.apps.experiment import compare_to_baseline

    results = json.loads((Path(__file__).resolve().parents[2] / "docs" / "demo" / "results.json").read_text())
    again = compare_to_baseline(results["networks"], results["baseline"])
    assert len(again) == len(results["comparison"]) == 10
    for shipped, new in zip(results["comparison"], again, strict=True):
        assert new["ci95"] == pytest.approx(shipped["ci95"], abs=1e-12)
        assert {k: v for k, v in new.items() if k != "ci95"} == {k: v for k, v in shipped.items() if k != "ci95"}
