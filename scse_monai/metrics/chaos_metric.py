"""The CHAOS metrics as a MONAI :class:`~monai.metrics.CumulativeIterationMetric`, per case and organ.

One object serves the bundle (driven by :class:`scse_monai.handlers.CHAOSMetricHandler`, an ignite handler on MONAI's
``IgniteMetricHandler``, and saved with MONAI's ``MetricsSaver``) and ``scse-monai evaluate`` alike, so both compute
exactly the organisers' numbers through :func:`scse_monai.metrics.chaos.evaluate_label_volumes`.

Example::

    >>> metric = CHAOSMetric()
    >>> ref = MetaTensor(labels[None], affine=affine, meta={"filename_or_obj": "labelsTr/ct_1.nii.gz"})
    >>> metric(y_pred=[pred_labels[None]], y=[ref])         # channel-first items, labels or one-hot
    >>> metric.aggregate()                                  # mean CHAOS score over cases (each case's organ mean)
    >>> metric.results()["cases"]["ct_1"]["liver"]["dice"]  # per case and organ, as scse-monai evaluate writes it
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.utils import look_up_option, string_list_all_gather

from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import METRIC_KEYS, ORGANS, evaluate_label_volumes, mean_record, summarise_cases
from scse_monai.metrics.tables import results_to_json
from scse_monai.utils.atomic import atomic_write_text

__all__ = ["CHAOSMetric", "label_map", "case_name"]


def label_map(x: Any) -> np.ndarray:
    """A ``(1, X, Y, Z)`` label map or ``(C, X, Y, Z)`` one-hot / probabilities -> ``(X, Y, Z)`` integer labels."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 4:
        raise InvalidInputError(f"expected a channel-first 3D volume (C, X, Y, Z), got shape {arr.shape}")
    if arr.shape[0] > 1:
        return np.argmax(arr, axis=0).astype(np.uint8)
    return np.rint(arr[0]).astype(np.uint8)


def _item_meta(x: Any, b: int, key: str) -> Any:
    # one item of a batched MetaTensor: the batch dimension of its affine / meta lists, if it has one
    if key == "affine":
        value = getattr(x, "affine", None) if hasattr(x, "meta") else None
        if isinstance(value, torch.Tensor) and value.ndim == 3:
            value = value[b]
        return value
    meta = getattr(x, "meta", None)
    value = meta.get(key) if isinstance(meta, Mapping) else None
    return value[b] if isinstance(value, (list, tuple)) else value


def case_name(filename: Any) -> str | None:
    """Case name of a file, ``labelsTr/ct_1.nii.gz`` -> ``ct_1`` (:func:`scse_monai.utils.paths.case_name`), or None."""
    from scse_monai.utils.paths import case_name as _case_name

    return _case_name(str(filename)) if filename else None


class CHAOSMetric(CumulativeIterationMetric):
    """CHAOS metrics (DICE, RAVD %, ASSD mm, MSSD mm and their scores) per case and organ, accumulated over batches.

    Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation", MedIA 69 (2021) 101950;
    each organ is evaluated as its own binary volume exactly as the organisers' code does
    (:mod:`scse_monai.metrics.chaos`); organs absent from the reference are not evaluated (NaN in the buffer).

    Input ``y_pred`` and ``y`` are ``(B, C, X, Y, Z)`` tensors or lists of ``(C, X, Y, Z)`` tensors: label maps
    (``C == 1``) or one-hot / probabilities (argmax over ``C``). Distances are in millimetres through the affine of
    ``y`` (else of ``y_pred``), so they must be MONAI ``MetaTensor``s; the case name comes from ``y``'s (else
    ``y_pred``'s) ``meta["filename_or_obj"]``.

    The buffer (:meth:`get_buffer`) is ``(cases, organs, len(METRIC_KEYS))``, float64.

    Args:
        organs: label value -> organ name; defaults to the CHAOS label space (:data:`scse_monai.metrics.ORGANS`).
        metric_name: the key of :data:`~scse_monai.metrics.chaos.METRIC_KEYS` that :meth:`aggregate` reduces;
            ``"score"`` (the CHAOS score, the mean of the four scores) by default.
    """

    def __init__(self, organs: Mapping[int, str] | None = None, metric_name: str = "score") -> None:
        super().__init__()
        self.organs = dict(ORGANS if organs is None else {int(k): str(v) for k, v in organs.items()})
        self.metric_name = look_up_option(metric_name, METRIC_KEYS)
        self._names: list[str] = []

    def reset(self) -> None:
        """Forget all cases."""
        super().reset()
        self._names = []

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("CHAOSMetric needs the reference y")
        if y_pred.shape[0] != y.shape[0]:
            raise InvalidInputError(f"batch sizes differ: prediction {y_pred.shape[0]}, reference {y.shape[0]}")
        out = torch.full((y.shape[0], len(self.organs), len(METRIC_KEYS)), torch.nan, dtype=torch.float64)
        for b in range(y.shape[0]):
            geometry = _item_meta(y, b, "affine")
            if geometry is None:
                geometry = _item_meta(y_pred, b, "affine")
            if geometry is None:
                raise InvalidInputError("the reference has no affine; expected a MetaTensor so distances are in mm")
            result = evaluate_label_volumes(
                label_map(y_pred[b]), label_map(y[b]), geometry.detach().cpu().numpy(), self.organs
            )
            for j, organ in enumerate(self.organs.values()):
                if organ in result:
                    out[b, j] = torch.tensor([result[organ][k] for k in METRIC_KEYS], dtype=torch.float64)
            name = case_name(_item_meta(y, b, "filename_or_obj")) or case_name(_item_meta(y_pred, b, "filename_or_obj"))
            self._names.append(name or f"case_{len(self._names)}")
        return out

    def _buffer(self) -> torch.Tensor:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):  # nothing accumulated yet
            return torch.zeros((0, len(self.organs), len(METRIC_KEYS)), dtype=torch.float64)
        return data

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean over cases of each case's mean over its evaluated organs, for ``metric_name`` (scalar tensor).

        With the default ``"score"`` this is the ``"mean"`` score of :func:`~scse_monai.metrics.summarise_cases`.
        NaN when no case holds any organ (or none was given).
        """
        values = self._buffer()[..., METRIC_KEYS.index(self.metric_name)]
        evaluated = ~torch.isnan(values).all(dim=1)
        if not evaluated.any():
            return torch.tensor(torch.nan, dtype=torch.float64)
        return torch.nanmean(values[evaluated], dim=1).mean()

    def details(self) -> dict[str, torch.Tensor]:
        """``{metric key: (cases, organs) tensor}`` (NaN where an organ was not evaluated), e.g. for MetricsSaver."""
        data = self._buffer()
        return {k: data[..., i] for i, k in enumerate(METRIC_KEYS)}

    def case_names(self) -> list[str]:
        """Names of the cases in buffer order (gathered from all ranks under ``torch.distributed``)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return string_list_all_gather(self._names)
        return list(self._names)

    def results(self) -> dict[str, dict]:
        """Per-case records and their summary, the format of ``scse-monai evaluate --json`` in batch mode.

        Returns:
            ``{"cases": {case: {organ: {METRIC_KEYS...}, ..., "mean": {...}}}, "mean":`` :func:`summarise_cases`
            ``}``; a case without any evaluated organ is left out; a repeated case name gets a ``#2``, ``#3`` suffix.
        """
        data = self._buffer().numpy()
        cases: dict[str, dict[str, dict[str, float]]] = {}
        for name, rows in zip(self.case_names(), data, strict=True):
            record = {
                organ: dict(zip(METRIC_KEYS, (float(v) for v in row), strict=True))
                for organ, row in zip(self.organs.values(), rows, strict=True)
                if not np.isnan(row).all()
            }
            if not record:
                continue
            record["mean"] = mean_record(record.values())
            unique, n = name, 1
            while unique in cases:
                n += 1
                unique = f"{name}#{n}"
            cases[unique] = record
        return {"cases": cases, "mean": summarise_cases(cases)}

    def save_results(self, path: str | os.PathLike) -> None:
        """Write :meth:`results` as strict JSON (:func:`results_to_json`) to ``path``, atomically, from rank 0.

        Under ``torch.distributed`` every rank must call it (the case names are gathered).
        """
        results = self.results()
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
            torch.distributed.get_rank() == 0
        ):
            atomic_write_text(path, results_to_json(results))

