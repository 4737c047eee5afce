"""The model knows how it was built: a record next to ``models/model.pt``, checked before any entry point loads it.

Training writes ``models/model.json`` beside every ``models/model.pt`` it saves (:class:`BestModelCheckpoint
<scse_monai.handlers.checkpoint.BestModelCheckpoint>` with ``record``): the resolved network definition (the SE
network's own arguments, :func:`~scse_monai.networks.nets.signatures.network_definition`), the layout of its state dict
(parameter names and shapes), the preprocessing settings the network learned under (``pixdim``, ``ct_window``) and
the SHA-256 of the ``model.pt`` it describes. The same record, minus the hash, fingerprints a training run's network
for resuming (:class:`~scse_monai.handlers.checkpoint.TrainingCheckpoint`).

:func:`check_model_file` is the one check every entry point runs before MONAI's ``CheckpointLoader`` loads the file
(bundle inference and evaluation; ``scse-monai demo`` and ``ablate`` evaluate through the bundle): a file that is
not a state dict, whose names or shapes do not fit the configured network, whose values are not finite, or whose
record disagrees with the configuration is refused with one line that names the file, the differing settings and the
overrides to pass, never with PyTorch's key dump.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from scse_monai.errors import InvalidInputError
from scse_monai.networks.nets.signatures import network_definition
from scse_monai.utils.io import atomic_write_text

__all__ = [
    "check_model_file",
    "network_record",
    "read_model_record",
    "record_fingerprint",
    "record_path",
    "write_model_record",
]

logger = logging.getLogger(__name__)

#: differences quoted in one message; the rest are counted.
_SHOWN = 3


def _jsonable(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples -> lists, enums/classes/dtypes -> their text)."""
    return json.loads(json.dumps(value, default=str))


def network_record(network: torch.nn.Module, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What defines a trained network: its definition, its state dict's layout and the preprocessing settings.

    Args:
        network: the network (a DDP/DataParallel wrapper is unwrapped).
        settings: training settings the weights depend on beyond the network, e.g. ``{"pixdim": [1.5, 1.5],
            "ct_window": [-175, 250]}``.
    """
    net = getattr(network, "module", network)
    return {
        "network_def": _jsonable(network_definition(net)),
        "state_dict": {k: list(v.shape) for k, v in net.state_dict().items()},
        "settings": _jsonable(dict(settings or {})),
    }


def record_fingerprint(record: Mapping[str, Any]) -> str:
    """A short hash of a :func:`network_record` (the model hash, if present, is left out)."""
    text = json.dumps({k: v for k, v in record.items() if k != "model_sha256"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_path(model_path: str | Path) -> Path:
    """``models/model.pt`` -> ``models/model.json``."""
    return Path(model_path).with_suffix(".json")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model_record(model_path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` (plus the SHA-256 of ``model_path``) atomically to :func:`record_path`."""
    target = record_path(model_path)
    text = json.dumps({**record, "model_sha256": _file_sha256(Path(model_path))}, indent=1)
    atomic_write_text(target, text + "\n")
    return target


def read_model_record(model_path: str | Path) -> dict[str, Any] | None:
    """The record of ``model_path`` if there is one that describes this very file, else ``None`` (logged)."""
    path = record_path(model_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        logger.warning(f"ignoring {path}: unreadable ({e})")
        return None
    if not isinstance(record, dict) or record.get("model_sha256") != _file_sha256(Path(model_path)):
        logger.warning(f"ignoring {path}: it describes another file than {Path(model_path).name}")
        return None
    return record


def _override(key: str, value: Any) -> str:
    """``--key value`` as MONAI's command line parses it back to ``value`` (Python literals, via ``fire``)."""
    return f"--{key} {shlex.quote(value if isinstance(value, str) else repr(value))}"


def _definition_differences(trained: Mapping[str, Any], configured: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(config id, trained value, configured value)`` for every setting that differs."""
    differences = []
    for section in ("network_def", "settings"):
        old, new = trained.get(section) or {}, configured.get(section) or {}
        if section == "network_def" and not (old and new):
            continue  # a network that keeps no arguments: its state-dict layout is compared instead
        # a setting the training did not record is not compared; a network argument on either side is
        names = list(old) if section == "settings" else [*old, *(k for k in new if k not in old)]
        for name in names:
            if old.get(name) != new.get(name):
                key = name if section == "settings" else f"network_def#{name}"
                differences.append((key, old.get(name), new.get(name)))
    return differences


def _layout_differences(state: Mapping[str, Any], expected: Mapping[str, list[int]]) -> list[str]:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and list(state[k].shape) != expected[k]]
    out = []
    if missing:
        out.append(f"{len(missing)} parameter(s) of the network missing (e.g. {', '.join(missing[:_SHOWN])})")
    if unexpected:
        out.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:_SHOWN])})")
    if shapes:
        k = shapes[0]
        out.append(
            f"{len(shapes)} of another shape (e.g. {k}: file {tuple(state[k].shape)}, network {tuple(expected[k])})"
        )
    return out


def _state_dict(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict in a loaded checkpoint: flat, or under ``"model"`` (the layouts MONAI's loaders accept)."""
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        found = type(obj).__name__ if not isinstance(obj, Mapping) else "a dict that is not parameter names -> tensors"
        raise InvalidInputError(
            f"not a state dict (found {found}); expected a dict of parameter names to tensors, as training writes "
            "(torch.save(network.state_dict(), ...))",
            path,
        )
    return obj


def check_model_file(
    model_path: str | Path, network: torch.nn.Module, settings: Mapping[str, Any] | None = None
) -> None:
    """Refuse a model file that the configured ``network`` cannot load as trained, in one line naming the file.

    Checked in order: the file is a readable weights-only checkpoint holding a state dict; its record
    (``model.json``, when it describes this file) agrees with the configured network definition and ``settings``;
    its parameter names and shapes are the network's; its floating-point values are finite.

    Args:
        model_path: the checkpoint, e.g. ``models/model.pt``.
        network: the configured network (``network_def``).
        settings: the configured preprocessing settings, as training records them (see :func:`network_record`).

    Raises:
        InvalidInputError: naming ``model_path``, what differs and what to pass.
    """
    from scse_monai.handlers.checkpoint import load_weights_only  # checkpoint imports this module

    path = Path(model_path)
    if not path.is_file():
        raise InvalidInputError(
            "no trained model here; train first (python -m monai.bundle run training ...) or pass the bundle that "
            "holds it with --bundle_root / --ckpt_dir",
            path,
        )
    state = _state_dict(load_weights_only(path), path)
    configured = network_record(network, settings)
    recorded = read_model_record(path)
    differences = _definition_differences(recorded, configured) if recorded else []
    if differences:
        said = "; ".join(f"{k}: trained {old!r}, configured {new!r}" for k, old, new in differences)
        overrides = " ".join(_override(k, old) for k, old, _ in differences)
        raise InvalidInputError(
            f"this model does not fit the configured network ({said}); pass the training's settings: {overrides} "
            "(or the same override file as for training, e.g. --config_file \"['configs/inference.json',"
            "'configs/demo_quick.json']\")",
            path,
        )
    layout = _layout_differences(state, configured["state_dict"])
    if layout:
        raise InvalidInputError(
            f"its weights do not fit the configured network_def: {'; '.join(layout)}; pass the network_def "
            "overrides the model was trained with (training records them in model.json)",
            path,
        )
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InvalidInputError(f"non-finite values (NaN or inf) in {name}: a damaged or diverged model", path)
