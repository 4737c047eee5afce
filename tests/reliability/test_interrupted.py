"""Interrupted work: SIGKILL training (also mid-checkpoint-write) and the converter, restart, and check the result.

Training runs the bundle's ``train.json`` with ``python -m monai.bundle run training`` in a subprocess (tiny
overrides). A wrapper can slow ``torch.save`` down and write half the checkpoint before sleeping, so that the kill
lands while ``last.pt`` is being written. After every kill ``last.pt`` must load with ``weights_only=True``; the
restart must resume from the saved epoch (at most the unfinished epoch is lost) and finish. The converter is killed
mid-case and re-run; its output must equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from scse_monai.handlers import read_history

from ..conftest import TINY_BUNDLE_OVERRIDES
from .reliability_data import BUNDLE_CONFIGS, STATS

REPO = BUNDLE_CONFIGS.parents[1]
EPOCHS = 5

# Runs `python -m monai.bundle ...`; with SLOW_SAVE_S set, torch.save writes half the bytes, sleeps, then the rest.
_WRAPPER = """
import os, sys, time, runpy
delay = float(os.environ.get("SLOW_SAVE_S", "0") or 0)
if delay:
    import io, torch
    _save = torch.save
    def slow_save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        _save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        with open(f, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(delay)
            fh.write(data[len(data) // 2:])
    torch.save = slow_save
sys.argv = ["monai.bundle"] + sys.argv[1:]
runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small CT phantom patients in two folds (train on one, validate on the other)."""
    from scse_monai.apps.chaos.convert import convert_chaos
    from scse_monai.apps.chaos.phantom import make_phantom

    base = tmp_path_factory.mktemp("interrupted_data")
    root = make_phantom(base / "raw", n_ct=2, n_mr=0, seed=0, size=32)
    assert convert_chaos(root, base / "data", folds=2, progress=False).ok
    return base / "data"


def _train_cmd(bundle_root: Path, data: Path) -> list[str]:
    cmd = [sys.executable, "-c", _WRAPPER, "run", "training",
           "--config_file", str(BUNDLE_CONFIGS / "train.json"), "--meta_file", str(BUNDLE_CONFIGS / "metadata.json"),
           "--logging_file", str(BUNDLE_CONFIGS / "logging.conf"),
           "--bundle_root", str(bundle_root), "--dataset_dir", str(data)]
    for key, value in {**TINY_BUNDLE_OVERRIDES, "epochs": EPOCHS, "val_sw_batch_size": 16}.items():
        cmd += [f"--{key}", json.dumps(value)]
    return cmd


def _start(cmd: list[str], log: Path, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(cmd, cwd=REPO, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_for(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float, poll: float = 0.01) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (status {proc.returncode}) before the kill point")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(poll)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    STATS["SIGKILLs sent"] += 1


#: the bundle's training state: one file per network configuration.
STATE = "last-*.pt"


def _saved_epoch(models: Path) -> int:
    """Epoch of the training state (``last-<network fingerprint>.pt``); loading it with weights_only=True must always
    succeed."""
    paths = list(models.glob(STATE))
    if not paths:
        return 0
    (path,) = paths
    try:
        state = torch.load(path, weights_only=True)
    except Exception:
        STATS["corrupt checkpoints after a kill"] += 1
        raise
    trainer = state["trainer"]
    return int(trainer["iteration"] // trainer["epoch_length"])


def _temporaries(models: Path, name: str = "last-*.pt") -> list[Path]:
    return list(models.glob(f".{name}.*.tmp*"))


def _trainer_epochs_completed(log: Path) -> list[int]:
    return [int(line.split("Epoch[")[1].split("]")[0]) for line in log.read_text().splitlines()
            if "SupervisedTrainer" in line and "Complete. Time taken" in line]


def test_training_survives_sigkill(small_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle_root"
    models = root / "train_state"  # the resume state; models/ holds only model.pt
    cmd = _train_cmd(root, small_data)

    # 1. kill while the epoch-2 last.pt is half written (an epoch-1 last.pt is already complete on disk)
    proc = _start(cmd, tmp_path / "run1.log", SLOW_SAVE_S="5")
    _wait_for(proc, lambda: any(models.glob(STATE)) and bool(_temporaries(models)), timeout=240)
    time.sleep(0.5)  # well inside the 5 s pause: half the bytes are in the temporary file
    _kill(proc)
    stale = _temporaries(models)
    assert stale, "the kill was meant to land mid-write"
    saved = _saved_epoch(models)
    assert saved == 1
    STATS["kill/resume cycles (training)"] += 1

    # 2. restart, kill at an arbitrary point after it saved one more epoch
    proc = _start(cmd, tmp_path / "run2.log")
    _wait_for(proc, lambda: _saved_epoch(models) > saved, timeout=240, poll=0.05)
    time.sleep(0.7)
    _kill(proc)
    assert not any(p.exists() for p in stale), "the half-written temporary of run 1 is removed on resume"
    run2 = _trainer_epochs_completed(tmp_path / "run2.log")
    assert run2 and run2[0] == saved + 1, f"run 2 should resume at epoch {saved + 1}, trained {run2}"
    saved2 = _saved_epoch(models)
    assert saved2 >= saved + 1
    STATS["kill/resume cycles (training)"] += 1

    # 3. restart and finish
    proc = _start(cmd, tmp_path / "run3.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "run3.log").read_text()[-3000:]
    run3 = _trainer_epochs_completed(tmp_path / "run3.log")
    # an interrupted run resumes after its last saved epoch; if run 2 was killed only after saving its final epoch,
    # the run was finished, and a finished run starts anew and trains all its epochs (the bundle's documented rule)
    expected = list(range(saved2 + 1, EPOCHS + 1)) if saved2 < EPOCHS else list(range(1, EPOCHS + 1))
    assert run3 == expected, f"resumed at the wrong epoch: {run3} after {saved2} saved"
    assert _saved_epoch(models) == EPOCHS
    assert not _temporaries(models) and not _temporaries(root / "models", "model.pt")
    assert sorted(p.name for p in (root / "models").iterdir()) == ["model.json", "model.pt"]
    torch.load(root / "models" / "model.pt", weights_only=True)
    assert [e["epoch"] for e in read_history(root / "eval" / "history.json")] == list(range(1, EPOCHS + 1))
    STATS["kill/resume cycles (training)"] += 1


# ------------------------------------------------------------------------------------------------- converter


def _convert_cmd(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scse_monai", "convert", str(root), str(out), "--quiet", "--folds", "2"]


def _snapshot(out: Path) -> dict[str, object]:
    """Every file under ``out``: NIfTI as (array, affine, header dtype), JSON parsed, else bytes."""
    result: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if path.name.endswith(".nii.gz"):
            img = nib.load(path)
            result[rel] = (np.asarray(img.dataobj), img.affine, img.get_data_dtype())
        elif path.suffix == ".json":
            result[rel] = json.loads(path.read_text())
        else:
            result[rel] = path.read_bytes()
    return result


def test_converter_survives_sigkill(tmp_path: Path) -> None:
    from scse_monai.apps.chaos.phantom import make_phantom

    root = make_phantom(tmp_path / "raw", n_ct=3, n_mr=0, seed=1, size=32)
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert subprocess.run(_convert_cmd(root, reference), cwd=REPO, capture_output=True).returncode == 0

    # kill (a) as soon as anything of the first case appears (a temporary or its label), (b) once the second case's
    # image file exists; then re-run to the end
    kill_points = [lambda: any((out / "labelsTr").glob("*")) if (out / "labelsTr").is_dir() else False,
                   lambda: (out / "imagesTr" / "ct_2.nii.gz").exists()]
    for i, reached in enumerate(kill_points):
        proc = _start(_convert_cmd(root, out), tmp_path / f"convert{i}.log")
        _wait_for(proc, reached, timeout=120, poll=0.002)
        _kill(proc)
        assert not (out / "datalist.json").exists()
        STATS["kill/resume cycles (converter)"] += 1
    final = subprocess.run(_convert_cmd(root, out), cwd=REPO, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "skipped (already complete) " in final.stdout and "skipped (already complete) 0" not in final.stdout

    got, want = _snapshot(out), _snapshot(reference)
    assert sorted(got) == sorted(want), "different files (e.g. leftover temporaries)"
    for rel, value in want.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(got[rel][0], value[0], err_msg=rel)
            np.testing.assert_array_equal(got[rel][1], value[1], err_msg=rel)
            assert got[rel][2] == value[2], rel
        else:
            assert got[rel] == value, rel
