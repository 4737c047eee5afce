"""The commands of bundle/docs/README.md, run as written (paths pointed at temp folders, sizes shrunk)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
import torch

from ..conftest import BUNDLE, REPO, TINY_BUNDLE_OVERRIDES

README = BUNDLE / "docs" / "README.md"


def readme_commands() -> dict[str, list[str]]:
    """Commands of the README's bash blocks, keyed by what they run (training, evaluating, ...).

    The MONAI Label subsection's commands run in tests/integration/test_monailabel_server.py.
    """
    text = README.read_text().split("### MONAI Label")[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if "monai.bundle" in line]
    keyed: dict[str, list[str]] = {}
    for line in commands:
        words = shlex.split(line)
        if words[0] == "torchrun":
            key = "torchrun"
        elif "evaluate.json" in line:
            key = "evaluate"
        elif "inference.json" in line and "run" in words:
            key = "inference"
        else:
            key = words[words.index("monai.bundle") + 1 + (words[words.index("monai.bundle") + 1] == "run")]
        keyed[key] = words
    return keyed


def _overrides(keys: tuple[str, ...] | None = None) -> list[str]:
    items = TINY_BUNDLE_OVERRIDES.items()
    return [a for k, v in items if keys is None or k.startswith(keys) for a in (f"--{k}", json.dumps(v))]


def _run(words: list[str], root: Path, data: Path, extra: list[str]) -> None:
    words = [w.replace("bundle/models/", f"{root}/models/") for w in words]
    previous = [""] + words[:-1]
    words = [str(root) if w == "bundle" and p == "--bundle_root" else w for p, w in zip(previous, words, strict=True)]
    words = [w.replace("chaos_nifti", str(data)) for w in words]
    if words[0] == "python":
        words[0] = sys.executable
    elif words[0] == "torchrun":
        words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(words + extra, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{shlex.join(words + extra)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def test_readme_lists_every_command() -> None:
    assert set(readme_commands()) == {
        "training", "torchrun", "evaluate", "inference", "verify_metadata", "verify_net_in_out", "ckpt_export"
    }


@pytest.fixture(scope="module")
def trained_root(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme_bundle")
    _run(readme_commands()["training"], root, phantom_data, _overrides())
    assert (root / "models" / "model.pt").exists()
    return root


def test_evaluate_command(trained_root: Path, phantom_data: Path) -> None:
    _run(readme_commands()["evaluate"], trained_root, phantom_data, _overrides())
    assert "mean" in json.loads((trained_root / "eval" / "chaos_metrics.json").read_text())


def test_inference_command(trained_root: Path, phantom_data: Path) -> None:
    _run(readme_commands()["inference"], trained_root, phantom_data,
         _overrides(("network_def", "pixdim", "roi_size")) + ["--output_dir", str(trained_root / "pred")])
    images = sorted((phantom_data / "imagesTr").glob("*.nii.gz"))
    preds = sorted((trained_root / "pred").glob("*_seg.nii.gz"))
    assert len(preds) == len(images)
    assert nib.load(preds[0]).shape == nib.load(images[0]).shape


def test_verify_and_export_commands(trained_root: Path, phantom_data: Path) -> None:
    commands = readme_commands()
    _run(commands["verify_metadata"], trained_root, phantom_data, [])
    _run(commands["verify_net_in_out"], trained_root, phantom_data, [])
    _run(commands["ckpt_export"], trained_root, phantom_data, _overrides(("network_def",)))
    scripted = torch.jit.load(str(trained_root / "models" / "model.ts"))
    assert scripted(torch.zeros(1, 1, 64, 64)).shape == (1, 5, 64, 64)


def test_torchrun_ddp_on_cpu(phantom_data: Path, tmp_path: Path) -> None:
    _run(readme_commands()["torchrun"], tmp_path, phantom_data, _overrides())
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP prefix leaked into the saved state dict"
    assert len(list((tmp_path / "train_state").glob("last-*.pt"))) == 1
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.json", "model.pt"]
