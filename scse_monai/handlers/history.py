"""A per-epoch training history as JSON, for plots and reports (TensorBoard logs are kept as well)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from scse_monai.utils.io import atomic_write_text

__all__ = ["TrainingHistory", "read_history"]


def _to_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.float().mean().item() if value.numel() else float("nan")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


class TrainingHistory:
    """Record mean training loss, epoch time, learning rate and validation metrics per epoch in ``history.json``.

    Attach to the trainer; validation metrics are read from ``validator.state.metrics`` when the validator ran in
    that epoch (MONAI's ``ValidationHandler`` runs it on the trainer's ``EPOCH_COMPLETED``, before this handler when
    it is listed first). The file is rewritten atomically after every epoch, and an existing file is continued when
    training resumes.

    Args:
        output_dir: folder of ``history.json``.
        validator: the evaluator whose metrics to record (optional).
        optimizer: to record the learning rate (optional).
        filename: defaults to ``"history.json"``.
    """

    def __init__(self, output_dir: str, validator: Engine | None = None, optimizer: Any = None,
                 filename: str = "history.json") -> None:
        self.path = Path(output_dir) / filename
        self.validator = validator
        self.optimizer = optimizer
        self.epochs: list[dict[str, Any]] = read_history(self.path) if self.path.exists() else []
        self._losses: list[float] = []
        self._t0 = 0.0

    def attach(self, engine: Engine) -> None:
        """Attach to the trainer."""
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine: Engine) -> None:
        self._losses, self._t0 = [], time.perf_counter()

    def _iteration_completed(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output[0].get("loss") if isinstance(output, list) and output else None
        if isinstance(output, dict):
            loss = output.get("loss")
        value = _to_float(loss)
        if value is not None:
            self._losses.append(value)

    def _epoch_completed(self, engine: Engine) -> None:
        record: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "loss": sum(self._losses) / len(self._losses) if self._losses else None,
            "epoch_time_s": time.perf_counter() - self._t0,
        }
        if self.optimizer is not None:
            record["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.validator is not None and self.validator.state.epoch == engine.state.epoch:
            record.update({f"val_{k}" if not k.startswith("val") else k: _to_float(v)
                           for k, v in self.validator.state.metrics.items()})
        self.epochs = [e for e in self.epochs if e["epoch"] < record["epoch"]] + [record]
        if not dist.is_initialized() or dist.get_rank() == 0:
            atomic_write_text(self.path, json.dumps({"epochs": self.epochs}, indent=1))


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The list of per-epoch records of a ``history.json``."""
    return json.loads(Path(path).read_text())["epochs"]
