"""Paired statistics between two networks evaluated on the same test cases, and summaries over seeds.

The unit of analysis is the case (one patient sequence: a CT volume, or one of T1 in/out phase and T2 of an MR
patient) scored by the CHAOS metrics (Kavur et al., MedIA 2021). Two networks are compared on the per-case
difference ``variant - baseline``:

- the mean difference with a bootstrap 95 % confidence interval (:func:`scipy.stats.bootstrap`, percentile method,
  resampling cases with replacement, a fixed seed; Efron & Tibshirani 1993);
- the two-sided Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`; exact distribution for small samples
  without ties).

With ``n`` pairs the smallest two-sided p-value the signed-rank test can give is ``2 / 2**n``; below
:data:`MIN_TEST_CASES` pairs it can never reach 0.05, so no p-value is given and the entry says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "MIN_TEST_CASES",
    "BOOTSTRAP_RESAMPLES",
    "TEST_NAME",
    "paired_comparison",
    "compare_networks",
    "average_over_seeds",
    "mean_sd",
]

#: fewest pairs for which a two-sided signed-rank test can give p < 0.05 (2 / 2**6 = 0.031).
MIN_TEST_CASES = 6
#: bootstrap resamples of the mean difference.
BOOTSTRAP_RESAMPLES = 10_000
#: what the ``"test"`` field of a comparison names.
TEST_NAME = "Wilcoxon signed-rank, two-sided (scipy.stats.wilcoxon); 95 % CI: percentile bootstrap of the mean"


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _seeded(seed: int) -> dict[str, Any]:
    """The generator argument of :func:`scipy.stats.bootstrap`: ``rng`` from SciPy 1.15, ``random_state`` before."""
    import inspect

    from scipy.stats import bootstrap

    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def paired_comparison(
    baseline: Mapping[str, float | None],
    variant: Mapping[str, float | None],
    metric: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare two networks' per-case values of one metric (``variant - baseline``).

    Only cases with a finite value for both networks are paired.

    Args:
        baseline: ``{case: value}`` of the reference network.
        variant: ``{case: value}`` of the other network.
        metric: name written to the result (e.g. ``"dice"``).
        resamples: bootstrap resamples.
        seed: bootstrap generator seed (the interval is reproducible).

    Returns:
        ``{"metric", "mean_difference", "ci95": [low, high] | None, "p_value": float | None, "n_cases", "cases",
        "test", "reason"}``; ``reason`` is ``None`` when the p-value is given, else says why not (too few cases, or
        every difference zero). ``mean_difference`` is ``None`` without any pair, ``ci95`` with fewer than 2.
    """
    from scipy.stats import bootstrap, wilcoxon

    cases = sorted(c for c in baseline if c in variant and _finite(baseline[c]) and _finite(variant[c]))
    diff = np.array([float(variant[c]) - float(baseline[c]) for c in cases], dtype=np.float64)  # type: ignore[arg-type]
    n = len(cases)
    out: dict[str, Any] = {"metric": metric, "mean_difference": float(diff.mean()) if n else None, "ci95": None,
                           "p_value": None, "n_cases": n, "cases": cases, "test": TEST_NAME, "reason": None}
    if n >= 2:
        # the paired difference is one sample: resampling cases resamples their differences
        ci = bootstrap((diff,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile",
                       **_seeded(seed)).confidence_interval
        out["ci95"] = [float(ci.low), float(ci.high)]
    if n < MIN_TEST_CASES:
        smallest = 2.0 / 2**n if n else 1.0
        out["reason"] = (f"too few cases for a test: {n} paired case(s); with fewer than {MIN_TEST_CASES} the "
                         f"signed-rank test cannot give p < 0.05 (its smallest p-value here is {smallest:.3g})")
    elif not np.any(diff != 0):
        out["reason"] = f"no test: all {n} differences are zero"
    else:
        out["p_value"] = float(wilcoxon(diff, alternative="two-sided").pvalue)
    return out


def compare_networks(
    baseline: Mapping[str, Mapping[str, Mapping[str, float]]],
    variant: Mapping[str, Mapping[str, Mapping[str, float]]],
    organs: Sequence[str],
    metrics: Sequence[str] = ("dice", "score"),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Paired comparisons per organ and overall for each metric.

    Args:
        baseline: per-case CHAOS results ``{case: {organ | "mean": {metric: value}}}`` of the reference network.
        variant: the same for the other network.
        organs: organ names to compare; ``"mean"`` (each case's mean over its organs) is added last as
            ``"overall"``.
        metrics: metric keys.
        seed: bootstrap seed.

    Returns:
        One :func:`paired_comparison` per metric and organ, each with an ``"organ"`` key.
    """
    def values(results: Mapping[str, Mapping[str, Mapping[str, float]]], organ: str, metric: str) -> dict[str, Any]:
        return {c: r[organ].get(metric) for c, r in results.items() if organ in r}

    out = []
    for metric in metrics:
        for organ in [*organs, "mean"]:
            entry = paired_comparison(values(baseline, organ, metric), values(variant, organ, metric), metric,
                                      seed=seed)
            out.append({"organ": "overall" if organ == "mean" else organ, **entry})
    return out


def average_over_seeds(
    per_seed: Mapping[Any, Mapping[str, Mapping[str, Mapping[str, float]]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-case results averaged over seeds: ``{seed: {case: {organ: {metric: v}}}}`` -> ``{case: {organ: ...}}``.

    Non-finite values (e.g. an infinite surface distance for an empty prediction) are left out of a mean; a value
    with no finite seed becomes NaN.
    """
    cases: dict[str, dict[str, dict[str, list[float]]]] = {}
    for results in per_seed.values():
        for case, organs in results.items():
            for organ, record in organs.items():
                slot = cases.setdefault(case, {}).setdefault(organ, {})
                for metric, value in record.items():
                    slot.setdefault(metric, [])
                    if _finite(value):
                        slot[metric].append(float(value))
    return {case: {organ: {m: (float(np.mean(v)) if v else math.nan) for m, v in rec.items()}
                   for organ, rec in organs.items()} for case, organs in cases.items()}


def mean_sd(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of the finite values; NaN if none."""
    arr = np.asarray([v for v in values if _finite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
