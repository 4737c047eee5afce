"""An ignite handler that computes the CHAOS metrics per case and organ and saves them (for a bundle's evaluate.json).

Use it like :class:`monai.handlers.MetricsSaver`::

    "handlers": [{"_target_": "scse_monai.metrics.handler.CHAOSMetricsSaver", "output_dir": "@output_dir"}]

On every ``ITERATION_COMPLETED`` it reads ``engine.state.output`` — the list of per-item dicts that MONAI's
evaluators produce after decollation — and evaluates each item's ``pred`` against its ``label`` with
:func:`scse_monai.metrics.chaos.evaluate_label_volumes`, in millimetres through the label's affine. On
``EPOCH_COMPLETED`` it writes ``<output_dir>/chaos_metrics.csv`` (one row per case and organ, each case's mean, then
the means over cases) and ``<output_dir>/chaos_metrics.json`` (``{"cases": {...}, "mean": {...}}``), atomically, and
logs the table. Results are reset at each ``EPOCH_STARTED``, so a validator attached to a trainer reports the
latest epoch. Under distributed evaluation the per-case results are gathered and written by rank 0.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import (
    ORGANS,
    evaluate_label_volumes,
    format_table,
    results_to_json,
    results_to_rows,
    rows_to_csv,
    summarise_cases,
)
from scse_monai.utils.io import atomic_write_text

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["CHAOSMetricsSaver", "label_map", "case_name"]

logger = logging.getLogger(__name__)


def label_map(x: Any) -> np.ndarray:
    """A ``(1, X, Y, Z)`` label map or ``(C, X, Y, Z)`` one-hot / probabilities -> ``(X, Y, Z)`` integer labels."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if arr.ndim != 4:
        raise InvalidInputError(f"expected a channel-first 3D volume (C, X, Y, Z), got shape {arr.shape}")
    if arr.shape[0] > 1:
        return np.argmax(arr, axis=0).astype(np.uint8)
    return np.rint(arr[0]).astype(np.uint8)


def _affine(x: Any) -> np.ndarray | None:
    aff = getattr(x, "affine", None)
    if aff is None and isinstance(getattr(x, "meta", None), Mapping):
        aff = x.meta.get("affine")
    if aff is None:
        return None
    aff = aff.detach().cpu().numpy() if hasattr(aff, "detach") else np.asarray(aff)
    aff = np.asarray(aff, dtype=np.float64)
    if aff.size != 16:
        raise InvalidInputError(f"affine of shape {aff.shape}; expected 4x4 (one item of a decollated batch)")
    return aff.reshape(4, 4)


def case_name(*items: Any) -> str | None:
    """Case name from the first item whose ``.meta["filename_or_obj"]`` is set: file name without ``.nii[.gz]``."""
    for x in items:
        meta = getattr(x, "meta", None)
        name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
        if name:
            name = Path(str(name)).name
            for suffix in (".nii.gz", ".nii"):
                if name.endswith(suffix):
                    return name[: -len(suffix)]
            return name
    return None


class CHAOSMetricsSaver:
    """Ignite handler: CHAOS metrics (DICE, RAVD %, ASSD mm, MSSD mm, scores) per case and organ, saved to files.

    Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation", MedIA 69 (2021) 101950;
    the metrics reproduce the organisers' evaluation code, see :mod:`scse_monai.metrics.chaos`.

    Args:
        output_dir: folder for ``chaos_metrics.csv`` and ``chaos_metrics.json`` (created if needed).
        pred_key: key of the prediction in each output dict: ``(1, X, Y, Z)`` labels or ``(C, X, Y, Z)`` one-hot /
            probabilities (argmax over C).
        label_key: key of the reference, same forms; its affine (MetaTensor) gives the voxel -> mm geometry.
        organs: label -> organ name; defaults to :data:`scse_monai.metrics.chaos.ORGANS`.

    Example::

        saver = CHAOSMetricsSaver(output_dir="eval")
        saver.attach(evaluator)
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        pred_key: str = "pred",
        label_key: str = "label",
        organs: Mapping[int, str] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.pred_key = pred_key
        self.label_key = label_key
        self.organs = dict(ORGANS if organs is None else {int(k): str(v) for k, v in organs.items()})
        self.cases: dict[str, dict[str, dict[str, float]]] = {}

    def attach(self, engine: Engine) -> None:
        """Register the handler's events on ``engine`` (a trainer, validator or evaluator)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _started(self, _engine: Engine) -> None:
        self.cases = {}

    def _items(self, output: Any) -> Sequence[Mapping[str, Any]]:
        if isinstance(output, Mapping):
            from monai.data import decollate_batch

            output = decollate_batch(output)
        if not isinstance(output, Sequence):
            raise InvalidInputError(
                f"engine.state.output is {type(output).__name__}; expected a list of dicts with "
                f"{self.pred_key!r} and {self.label_key!r} (decollated evaluator output)"
            )
        return output

    def _iteration_completed(self, engine: Engine) -> None:
        for item in self._items(engine.state.output):
            if self.pred_key not in item or self.label_key not in item:
                raise InvalidInputError(f"output item lacks {self.pred_key!r} or {self.label_key!r}: {sorted(item)}")
            pred, label = item[self.pred_key], item[self.label_key]
            geometry = _affine(label)
            if geometry is None:
                geometry = _affine(pred)
            if geometry is None:
                raise InvalidInputError(
                    f"{self.label_key!r} has no affine; expected a MetaTensor so distances can be given in mm"
                )
            name = case_name(label, pred) or f"case_{len(self.cases)}"
            base, n = name, 1
            while name in self.cases:
                n += 1
                name = f"{base}#{n}"
            self.cases[name] = evaluate_label_volumes(label_map(pred), label_map(label), geometry, self.organs)

    def _gathered(self) -> dict[str, dict[str, dict[str, float]]]:
        import ignite.distributed as idist

        if idist.get_world_size() <= 1:
            return self.cases
        from monai.handlers.utils import string_list_all_gather

        merged: dict[str, dict[str, dict[str, float]]] = {}
        for text in string_list_all_gather([json.dumps(self.cases)]):
            merged.update(json.loads(text))
        return merged

    def __call__(self, engine: Engine) -> None:
        """Write the CSV and JSON files of the finished epoch and log the table."""
        import ignite.distributed as idist

        cases = self._gathered()
        if idist.get_rank() != 0:
            return
        summary = summarise_cases(cases)
        rows = results_to_rows(cases, summary)
        atomic_write_text(self.output_dir / "chaos_metrics.csv", rows_to_csv(rows))
        atomic_write_text(self.output_dir / "chaos_metrics.json", results_to_json({"cases": cases, "mean": summary}))
        logger.info("CHAOS metrics (%d cases):\n%s", len(cases), format_table(rows))
