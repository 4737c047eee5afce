"""Crash-safe checkpoints for ignite/MONAI training: fixed names, atomic writes, weights-only contents.

MONAI's :class:`~monai.handlers.CheckpointSaver` writes with ``atomic=False`` and, with ``n_saved=1``, deletes the
previous file before writing the next; a run killed in between leaves no (or a truncated) checkpoint. These savers
write to a temporary file and rename it over a fixed name, so the file on disk is always complete and loadable with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_torch_save, atomic_write_text, remove_stale_temporaries

__all__ = ["TrainingCheckpoint", "BestModelSaver", "load_weights_only", "unwrap_model"]

logger = logging.getLogger(__name__)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel``/``DataParallel``, so saved keys carry no ``module.`` prefix."""
    return getattr(model, "module", model)


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _state_dict(obj: Any) -> Any:
    if isinstance(obj, torch.nn.Module):
        return unwrap_model(obj).state_dict()
    return obj.state_dict()


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that an atomic write of ``path`` left behind when its run was killed."""
    if _is_main_process():
        remove_stale_temporaries([path])


class TrainingCheckpoint:
    """Save the full training state after every epoch to one file, atomically, and resume from it on start.

    Args:
        save_dir: folder of the checkpoint.
        save_dict: objects with ``state_dict()``/``load_state_dict()``, e.g. ``{"model": net, "optimizer": opt,
            "lr_scheduler": sched}``; the trainer this handler is attached to is added as ``"trainer"`` (so a config
            needs no reference from its handlers back to its trainer).
        filename: file name. Defaults to ``"last.pt"``.
        resume: when the file exists at the trainer's start, load it and continue from the epoch after the saved
            one. An interrupted run therefore loses at most its unfinished epoch.
        map_location: passed to ``torch.load``.

    The file is loaded with ``weights_only=True``: a checkpoint that would unpickle arbitrary objects is refused.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: Mapping[str, Any],
        filename: str = "last.pt",
        resume: bool = True,
        map_location: Any = "cpu",
    ) -> None:
        self.path = Path(save_dir) / filename
        self.save_dict = dict(save_dict)
        self.resume = resume
        self.map_location = map_location

    def attach(self, engine: Engine) -> None:
        """Resume on ``STARTED`` and save on every ``EPOCH_COMPLETED`` of ``engine`` (the trainer)."""
        self.save_dict.setdefault("trainer", engine)
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def save(self, engine: Engine) -> None:
        """Write the state atomically (main process only)."""
        if not _is_main_process():
            return
        atomic_torch_save({k: _state_dict(v) for k, v in self.save_dict.items()}, self.path)
        logger.info(f"saved training state of epoch {engine.state.epoch} to {self.path}")

    def load(self, engine: Engine) -> None:
        """Restore the saved state into the objects of ``save_dict`` if resuming and the file exists."""
        _remove_stale_temporaries(self.path)
        if not (self.resume and self.path.exists()):
            return
        checkpoint = load_weights_only(self.path, self.map_location)
        max_epochs = engine.state.max_epochs
        to_load = {k: unwrap_model(v) if isinstance(v, torch.nn.Module) else v for k, v in self.save_dict.items()}
        Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint)
        engine.state.max_epochs = max_epochs  # the run's own budget wins over the saved one
        logger.info(f"resumed from {self.path} at epoch {engine.state.epoch} of {max_epochs}")


def load_weights_only(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with a clear error for a checkpoint that is not plain tensors.

    Raises:
        InvalidInputError: when the file is unreadable, truncated, or would need to unpickle arbitrary objects
            (which could run code).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise InvalidInputError(
            "refusing to load a checkpoint that is not plain tensors/containers (it would unpickle arbitrary "
            f"objects, which can run code); expected a state_dict saved with torch.save ({str(e).splitlines()[0]})",
            path,
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InvalidInputError(f"cannot read checkpoint ({e}); expected a file written by torch.save", path) from e


class BestModelSaver:
    """Save the network's plain ``state_dict`` whenever the evaluator's key metric improves.

    The file is what MONAI bundles and MONAI Label expect in ``models/model.pt``. The best value so far is kept in
    a JSON file beside it, so a resumed run does not overwrite a better model with a worse one.

    Args:
        save_dir: folder of the model file.
        network: the network (a DDP wrapper is unwrapped).
        filename: model file name. Defaults to ``"model.pt"``.
        metric_name: metric in ``engine.state.metrics``; defaults to the evaluator's key metric.
        mode: ``"max"`` or ``"min"``.
    """

    def __init__(
        self,
        save_dir: str,
        network: torch.nn.Module,
        filename: str = "model.pt",
        metric_name: str | None = None,
        mode: str = "max",
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.path = Path(save_dir) / filename
        self.record = self.path.with_suffix(".json")
        self.network = network
        self.metric_name = metric_name
        self.mode = mode
        self.best: float | None = None
        _remove_stale_temporaries(self.path)
        _remove_stale_temporaries(self.record)
        if self.record.exists():
            self.best = json.loads(self.record.read_text()).get("best_metric")

    def attach(self, engine: Engine) -> None:
        """Check after every ``EPOCH_COMPLETED`` of ``engine`` (the evaluator)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def __call__(self, engine: Engine) -> None:
        """Save the network if the metric improved."""
        name = self.metric_name or engine.state.key_metric_name
        value = float(engine.state.metrics[name])
        if not _is_main_process() or not self._improved(value):
            return
        self.best = value
        atomic_torch_save(unwrap_model(self.network).state_dict(), self.path)
        epoch = getattr(engine.state, "epoch", None)
        atomic_write_text(self.record, json.dumps({"metric_name": name, "best_metric": value, "epoch": epoch}))
        logger.info(f"{name} improved to {value:.4f}: saved {self.path}")
