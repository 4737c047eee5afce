"""Untrusted checkpoints: a pickle that would run code is refused everywhere the package and bundle load weights."""

from __future__ import annotations

import ast
import inspect
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from scse_monai.errors import InvalidInputError
from scse_monai.handlers import TrainingCheckpoint, load_weights_only

from .reliability_data import BUNDLE_CONFIGS, STATS, exception_chain, first_exception_of, inference_workflow

PACKAGE = Path(__file__).resolve().parents[2] / "scse_monai"


class _Payload:
    """Unpickling this runs ``exec``: it writes the marker file. A weights-only loader must never get that far."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"weight": torch.zeros(1)}, "trainer": _Payload(marker)}, path)
    return path


def test_crafted_checkpoint_really_runs_code_when_fully_unpickled(tmp_path: Path) -> None:
    """The control: without weights_only the file executes its payload (so the refusals below mean something)."""
    marker = tmp_path / "marker"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_load_weights_only_refuses(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _malicious_checkpoint(tmp_path / "models" / "model.pt", marker)
    with pytest.raises(InvalidInputError, match="refusing to load") as info:
        load_weights_only(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    STATS["crafted checkpoints refused"] += 1


def test_training_resume_refuses(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _malicious_checkpoint(tmp_path / "models" / "last.pt", marker)
    net = torch.nn.Linear(2, 2)
    trainer = Engine(lambda engine, batch: None)
    TrainingCheckpoint(str(tmp_path / "models"), {"model": net}).attach(trainer)
    with pytest.raises(InvalidInputError, match="last.pt"):
        trainer.run([0], max_epochs=1)
    assert not marker.exists()
    STATS["crafted checkpoints refused"] += 1


def test_bundle_inference_refuses(tmp_path: Path) -> None:
    """inference.json checks models/model.pt with load_weights_only before it runs (torch.load weights_only=True)."""
    import nibabel as nib
    import numpy as np

    marker = tmp_path / "marker"
    _malicious_checkpoint(tmp_path / "models" / "model.pt", marker)
    image = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), np.eye(4)), image)
    workflow = inference_workflow(image, tmp_path / "pred", tmp_path, load_pretrain=True)
    with pytest.raises(Exception) as info:
        workflow.initialize()
        workflow.run()
    assert "model.pt" in str(first_exception_of(info.value, InvalidInputError))  # the file is named
    refused = first_exception_of(info.value, pickle.UnpicklingError)
    assert refused is not None, [repr(e) for e in exception_chain(info.value)]
    assert "weights_only" in str(refused) or "Weights only" in str(refused)
    assert not marker.exists()
    assert not (tmp_path / "pred").exists() or not list((tmp_path / "pred").rglob("*.nii.gz"))
    STATS["crafted checkpoints refused"] += 1


# ------------------------------------------------------------------------------------------- static inventory


def _torch_load_calls(source: str) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            value = node.func.value
            if isinstance(value, ast.Name) and value.id == "torch":
                calls.append(node)
    return calls


def _weights_only_true(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _torch_load_calls(path.read_text()):
            sites.append(f"{path.relative_to(PACKAGE.parent)}:{call.lineno}")
            assert _weights_only_true(call), f"torch.load without weights_only=True at {sites[-1]}"
    assert sites, "expected at least scse_monai.handlers.checkpoint.load_weights_only"
    STATS["torch.load sites checked (package)"] += len(sites)


def test_bundle_configs_load_weights_only() -> None:
    """No config calls torch.load by expression without weights_only=True; every CheckpointLoader is MONAI's, which
    loads with weights_only=True (checked in the installed source)."""
    from monai.handlers import CheckpointLoader

    loaders = 0
    for config in sorted(BUNDLE_CONFIGS.glob("*.json")):
        text = config.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in match.group(1), f"{config.name}: {match.group(0)}"
        loaders += len(re.findall(r'"_target_":\s*"(?:monai\.handlers\.)?CheckpointLoader"', text))
        json.loads(text)
    assert loaders >= 2, "inference.json and evaluate.json load models/model.pt with CheckpointLoader"
    calls = _torch_load_calls(inspect.getsource(CheckpointLoader))
    assert calls and all(_weights_only_true(c) for c in calls), "MONAI's CheckpointLoader must use weights_only=True"
    STATS["CheckpointLoader uses in bundle configs (weights_only=True)"] += loaders
