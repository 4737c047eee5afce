"""The CHAOS metrics as an ignite metric handler: MONAI's ``IgniteMetricHandler`` around :class:`CHAOSMetric`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monai.handlers import IgniteMetricHandler

from scse_monai.metrics.chaos_metric import CHAOSMetric

__all__ = ["CHAOSMetricHandler"]


class CHAOSMetricHandler(IgniteMetricHandler):
    """CHAOS metrics per case and organ for an evaluator, like MONAI's ``MeanDice`` handler for ``DiceMetric``.

    Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation", MedIA 69 (2021) 101950.
    The engine's metric (``engine.state.metrics[name]``) is :meth:`CHAOSMetric.aggregate`: by default the mean CHAOS
    score over cases. Reset, accumulation and cross-process gathering are MONAI's (``IgniteMetricHandler`` and
    ``Cumulative``). With ``save_details``, the per-case tables go to ``engine.state.metric_details`` as
    ``"{details_prefix}_{key}"`` for every key of :data:`~scse_monai.metrics.METRIC_KEYS` (``chaos_dice``, ...,
    ``chaos_score``), each ``(cases, organs)`` with NaN where an organ is absent from the reference, which MONAI's
    ``MetricsSaver`` writes as ``chaos_<key>_raw.csv`` (columns ``class0`` ... in organ order: liver, right kidney,
    left kidney, spleen) and ``chaos_<key>_summary.csv``.

    Args:
        organs: label value -> organ name; defaults to the CHAOS label space.
        metric_name: the metric key that the engine's value reduces (see :class:`CHAOSMetric`).
        output_transform: gives ``(y_pred, y)`` from ``engine.state.output``, e.g.
            ``monai.handlers.from_engine(["pred", "label"])``; items must be MetaTensors (affine for millimetres,
            ``filename_or_obj`` for case names).
        save_details: publish the per-case tables for ``MetricsSaver``.
        details_prefix: prefix of the ``metric_details`` names.

    Example (bundle config)::

        "additional_metrics": {"val_chaos_score": {
            "_target_": "scse_monai.handlers.CHAOSMetricHandler",
            "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}}
    """

    def __init__(
        self,
        organs: Mapping[int, str] | None = None,
        metric_name: str = "score",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        details_prefix: str = "chaos",
    ) -> None:
        super().__init__(
            metric_fn=CHAOSMetric(organs=organs, metric_name=metric_name),
            output_transform=output_transform,
            save_details=save_details,
        )
        self.details_prefix = details_prefix

    def compute(self) -> Any:
        """The aggregate; with ``save_details`` also one ``(cases, organs)`` table per metric key."""
        result = super().compute()
        if self.save_details and self._engine is not None:
            details = self._engine.state.metric_details
            # IgniteMetricHandler stores the whole (cases, organs, metrics) buffer under the metric's name, but
            # MetricsSaver writes 2-D (cases, classes) tables: replace it by one table per metric key.
            details.pop(self._name, None)
            details.update({f"{self.details_prefix}_{k}": v for k, v in self.metric_fn.details().items()})
        return result
