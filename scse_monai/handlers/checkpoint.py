"""Checkpoints a MONAI Label server can rely on: ``models/`` holds only the best model of the run that wrote it.

- :class:`BestModelCheckpoint` is ignite's :class:`~ignite.handlers.Checkpoint` (score = the evaluator's key metric,
  ``n_saved=1``, fixed name ``model.pt``, plain ``state_dict``). Its best-score record lives in memory, so every new
  run starts without one and its first validation writes ``model.pt``; only a resumed run restores it (from the
  training state). Beside ``model.pt`` it writes ``model.json``, how the network was built
  (:mod:`~scse_monai.handlers.model_record`).
- :class:`TrainingCheckpoint` saves the full training state (``last-<network fingerprint>.pt``, in a folder of its
  own outside ``models/``: MONAI Label serves the first ``models/*.pt``) after every epoch and resumes an
  *interrupted* run of the same network only. A run that finished, one on other data (another datalist or validation
  split), or one whose saved epoch is not below the requested ``max_epochs`` starts a new run that trains all its
  epochs, and the log says why.
- Writes go through :class:`AtomicDiskSaver`, ignite's ``DiskSaver`` with the project's atomic write; loads are
  ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.distributed import get_rank
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from scse_monai.errors import InvalidInputError
from scse_monai.handlers.model_record import record_fingerprint, write_model_record
from scse_monai.utils.io import atomic_torch_save, remove_stale_temporaries

__all__ = [
    "AtomicDiskSaver",
    "BestModelCheckpoint",
    "TrainingCheckpoint",
    "load_weights_only",
    "run_fingerprint",
    "unwrap_model",
]

logger = logging.getLogger(__name__)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel``/``DataParallel``, so saved keys carry no ``module.`` prefix."""
    return getattr(model, "module", model)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that an atomic write of ``path`` left behind when its run was killed."""
    if get_rank() == 0:
        remove_stale_temporaries([path])


class AtomicDiskSaver(DiskSaver):
    """ignite's ``DiskSaver`` (rank 0 writes) through :func:`~scse_monai.utils.io.atomic_torch_save`.

    ``DiskSaver(atomic=True)`` itself leaves its ``tmpXXXX`` files behind when the process is killed mid-write;
    :func:`atomic_torch_save` names them ``.<file>.*.tmp``, which the handlers below remove at the next start. With
    a fixed file name the rename replaces the previous file, so ignite's remove-before-save (which would leave no
    ``model.pt`` for a moment) is skipped.
    """

    def __init__(self, dirname: str | Path) -> None:
        super().__init__(dirname, atomic=True, create_dir=True, require_empty=False)

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        atomic_torch_save(checkpoint, path)

    def remove(self, filename: str) -> None:
        """Nothing to do: the next save of the same name replaces the file atomically."""


class BestModelCheckpoint(Checkpoint):
    """Write the network's plain ``state_dict`` to ``save_dir/filename`` whenever the key metric improves.

    An ignite :class:`~ignite.handlers.Checkpoint` with ``n_saved=1`` and a fixed file name (what MONAI bundles and
    MONAI Label read as ``models/model.pt``). MONAI's ``CheckpointSaver`` is not used because it hard-codes
    ``DiskSaver(atomic=False)`` and deletes the old file before writing the new one. The best score so far is part
    of :meth:`state_dict` (ignite's ``_saved`` list), which :class:`TrainingCheckpoint` saves and restores, so only
    a resumed run compares against an earlier record; a NaN metric ranks below every number.

    Args:
        save_dir: folder of the model file.
        network: the network (a DDP wrapper is unwrapped by ignite).
        filename: model file name. Defaults to ``"model.pt"``.
        metric_name: metric in ``engine.state.metrics``; defaults to the evaluator's key metric.
        mode: ``"max"`` or ``"min"``.
        record: how the network was built (:func:`~scse_monai.handlers.model_record.network_record`); written
            beside the model file (``model.json``, with the file's hash) after every save, for the entry points that
            load it to check (:func:`~scse_monai.handlers.model_record.check_model_file`).
    """

    def __init__(
        self,
        save_dir: str,
        network: torch.nn.Module,
        filename: str = "model.pt",
        metric_name: str | None = None,
        mode: str = "max",
        record: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.path = Path(save_dir) / filename
        self.record = record
        self.metric_name = metric_name
        self.sign = 1.0 if mode == "max" else -1.0
        _remove_stale_temporaries(self.path)
        super().__init__(
            {"model": network},
            AtomicDiskSaver(save_dir),
            filename_pattern=filename,
            score_function=self._score,
            score_name=metric_name or "key_metric",
            n_saved=1,
        )

    def _score(self, engine: Engine) -> float:
        name = self.metric_name or engine.state.key_metric_name
        value = float(engine.state.metrics[name])
        return -math.inf if math.isnan(value) else self.sign * value

    @property
    def best(self) -> float | None:
        """The best metric value saved in this run (``None`` before the first save)."""
        return self.sign * self._saved[-1].priority if self._saved else None

    def attach(self, engine: Engine) -> None:
        """Check after every ``EPOCH_COMPLETED`` of ``engine`` (the evaluator)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Save the network if the metric improved on the best of this run."""
        before = self.best
        super().__call__(engine)
        if self.best != before:
            if self.record is not None and get_rank() == 0:  # rank 0 wrote the model (ignite's DiskSaver)
                write_model_record(self.path, self.record)
            logger.info(f"{self.score_name} improved to {self.best:.4f}: saved {self.path}")


def run_fingerprint(data: Any) -> str:
    """A short hash of what defines a run's data (e.g. ``{"train": [...], "validate": [...]}`` datalists)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TrainingCheckpoint:
    """Save the training state after every epoch (atomically) and resume an interrupted run from it.

    Args:
        save_dir: folder of the state file; keep it outside the bundle's ``models/`` (MONAI Label serves the first
            ``models/*.pt``).
        save_dict: objects with ``state_dict()``/``load_state_dict()``, e.g. ``{"model": net, "optimizer": opt,
            "lr_scheduler": sched, "best_model": best_model_checkpoint}``; the trainer this handler is attached to
            is added as ``"trainer"``.
        run_data: what defines the run's data, typically ``{"train": @train#dataset#data, "validate":
            @validate#dataset#data}``; a saved state of other data is never resumed.
        filename: file name. Defaults to ``"last.pt"``; with a ``network_record`` the record's fingerprint is
            added to the stem (``last-<fingerprint>.pt``).
        resume: resume an interrupted run whose state is in ``save_dir``. ``False`` always starts a new run.
        map_location: passed to ``torch.load``.
        network_record: how the network is built (:func:`~scse_monai.handlers.model_record.network_record`).
            Each network definition keeps its own state file, so runs of other networks in the same bundle root
            (the 3D variant, other channels, the no-SE baseline) neither resume nor overwrite it.

    The saved state is resumed only when ``resume`` is true, its ``run_data`` and network fingerprints match, its run
    stopped before its own ``max_epochs`` (it was interrupted) and its epoch is below this run's ``max_epochs``; the
    run then continues with the next epoch up to this run's ``max_epochs``. Otherwise a new run starts at epoch 1,
    and the log says why in one line, so a training request always trains: e.g. MONAI Label's ``/train`` with
    ``max_epochs`` N trains N epochs every time.
    The file is loaded with ``weights_only=True``: a checkpoint that would unpickle arbitrary objects is refused.
    Saving is ignite's ``Checkpoint`` (with :class:`AtomicDiskSaver`), loading ignite's ``Checkpoint.load_objects``;
    MONAI's ``CheckpointLoader`` is not used because it loads unconditionally, while resuming must first read the
    saved run's record to decide whether it may.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: Mapping[str, Any],
        run_data: Any = None,
        filename: str = "last.pt",
        resume: bool = True,
        map_location: Any = "cpu",
        network_record: Mapping[str, Any] | None = None,
    ) -> None:
        self.network_fingerprint = None if network_record is None else record_fingerprint(network_record)
        name = Path(filename)
        if self.network_fingerprint is not None:
            name = name.with_stem(f"{name.stem}-{self.network_fingerprint}")
        self.path = Path(save_dir) / name
        self.save_dict = dict(save_dict)
        self.fingerprint = run_fingerprint(run_data)
        self.resume = resume
        self.map_location = map_location
        self.resumed_from: int | None = None
        self._saver: Checkpoint | None = None

    def attach(self, engine: Engine) -> None:
        """Resume on ``STARTED`` and save on every ``EPOCH_COMPLETED`` of ``engine`` (the trainer)."""
        self.save_dict.setdefault("trainer", engine)
        to_save = {k: unwrap_model(v) if isinstance(v, torch.nn.Module) else v for k, v in self.save_dict.items()}
        to_save["run"] = _RunRecord(self, engine)
        self._saver = Checkpoint(
            to_save, AtomicDiskSaver(self.path.parent), filename_pattern=self.path.name, n_saved=1
        )
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._saver)

    def _reason_not_to_resume(self, saved: Mapping[str, Any], max_epochs: int) -> str | None:
        run = saved.get("run", {})
        epoch, saved_max = run.get("epoch"), run.get("max_epochs")
        if run.get("fingerprint") != self.fingerprint:
            return "it was trained on other data (datalist or validation split)"
        if run.get("network") != self.network_fingerprint:
            return "it trained another network definition"
        if epoch is None or saved_max is None:
            return "it records no epoch"
        if epoch >= saved_max:
            return f"that run finished (epoch {epoch} of {saved_max})"
        if epoch >= max_epochs:
            return f"its epoch {epoch} is not below this run's max_epochs {max_epochs}"
        return None

    def load(self, engine: Engine) -> None:
        """Restore the saved state into ``save_dict`` if the saved run is resumable (see the class docstring)."""
        _remove_stale_temporaries(self.path)
        self.resumed_from = None
        if not self.path.exists():
            others = [p.name for p in self.path.parent.glob(f"{self.path.stem.split('-')[0]}*{self.path.suffix}")]
            if others:
                logger.info(
                    f"starting a new run: no saved state of this network configuration ({self.path.name}); "
                    f"{', '.join(sorted(others))} in {self.path.parent} belong(s) to other configurations and are "
                    "left as they are"
                )
            return
        if not self.resume:
            logger.info(f"resume is off: starting a new run; {self.path} will be overwritten")
            return
        checkpoint = load_weights_only(self.path, self.map_location)
        max_epochs = engine.state.max_epochs
        reason = self._reason_not_to_resume(checkpoint, max_epochs)
        if reason is not None:
            logger.info(f"starting a new run of {max_epochs} epoch(s), not resuming {self.path}: {reason}")
            return
        to_load = {k: v for k, v in self._saver.to_save.items() if k != "run"}
        Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint)
        engine.state.max_epochs = max_epochs  # the run's own budget wins over the saved one
        self.resumed_from = engine.state.epoch
        logger.info(
            f"resumed the interrupted run from {self.path}: epoch {engine.state.epoch} done, training epochs "
            f"{engine.state.epoch + 1}-{max_epochs}"
        )


class _RunRecord:
    """The ``"run"`` entry of the training state: data fingerprint, epoch and ``max_epochs`` when saved."""

    def __init__(self, owner: TrainingCheckpoint, engine: Engine) -> None:
        self.owner, self.engine = owner, engine

    def state_dict(self) -> dict[str, Any]:
        state = self.engine.state
        return {
            "fingerprint": self.owner.fingerprint,
            "network": self.owner.network_fingerprint,
            "epoch": state.epoch,
            "max_epochs": state.max_epochs,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: the record is only read to decide whether to resume."""


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
