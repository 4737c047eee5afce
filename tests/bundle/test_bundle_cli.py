"""The bundle's command line does what is typed: `python -m monai.bundle run ...` in a subprocess, as users run it.

One training run on the phantom is killed after its first epoch (a real SIGKILL); its bundle root is copied for
each case, so every case starts from the same interrupted state.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scse_monai.handlers import read_history

from ..conftest import BUNDLE, TINY_BUNDLE_OVERRIDES

CONFIGS = BUNDLE / "configs"
TINY_3D = {k: v for k, v in json.loads((CONFIGS / "quick_3d.json").read_text()).items() if not k.startswith("_")}


def bundle_command(run_id: str, config_files: list[str], root: Path, *args: str) -> list[str]:
    files = [str(CONFIGS / f) for f in config_files]
    return [
        sys.executable, "-m", "monai.bundle", "run", run_id,
        "--meta_file", str(CONFIGS / "metadata.json"),
        "--config_file", files[0] if len(files) == 1 else repr(files),
        "--logging_file", str(CONFIGS / "logging.conf"),
        "--bundle_root", str(root),
        *args,
    ]


def overrides(values: dict) -> list[str]:
    """``--key value`` pairs, values spelt as JSON (what a user types for lists and numbers)."""
    return [a for k, v in values.items() for a in (f"--{k}", json.dumps(v))]


def run_bundle(command: list[str], env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "SCSE_MONAI_DEBUG"}
    env = dict(base, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def last_line(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or [""])[-1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_files(root: Path) -> list[Path]:
    return sorted((root / "train_state").glob("last*.pt"))


@pytest.fixture(scope="module")
def killed(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D training run (demo_quick.json's small network) killed with SIGKILL after its first epoch was saved."""
    root = tmp_path_factory.mktemp("killed_2d")
    command = bundle_command("training", ["train.json", "demo_quick.json"], root, "--dataset_dir", str(phantom_data),
                             "--epochs", "40")
    log = open(root.parent / "killed_2d.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    deadline = time.monotonic() + 500
    try:
        while not state_files(root) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert len(state_files(root)) == 1, (root.parent / "killed_2d.log").read_text()[-3000:]
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "model.json").is_file()
    return root


def copy_of(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "root"
    shutil.copytree(root, target)
    return target


def resume_run(root: Path, data: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Two epochs of the killed run's configuration, without validation (it is not what these tests look at)."""
    command = bundle_command("training", ["train.json", "demo_quick.json"], root, "--dataset_dir", str(data),
                             "--epochs", "2", "--val_interval", "10", *args)
    proc = run_bundle(command, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_resume_true_as_typed_resumes_the_killed_run(killed: Path, phantom_data: Path, tmp_path: Path) -> None:
    """The control for the next test: the killed state is resumable, and the string "true" means true. (What
    `--compile true` does is tested in test_bundle_compile.py; here the log shows dynamo compiling when asked.)"""
    proc = resume_run(copy_of(killed, tmp_path), phantom_data, "--resume", "true")
    assert "resumed the interrupted run" in proc.stderr + proc.stdout


def test_resume_false_and_compile_false_as_typed(killed: Path, phantom_data: Path, tmp_path: Path) -> None:
    """`--resume false` starts fresh after a killed run; `--compile false` compiles nothing (dynamo logs nothing)."""
    root = copy_of(killed, tmp_path)
    proc = resume_run(root, phantom_data, "--resume", "false", "--compile", "false", "--amp", "false",
                      env={"TORCH_LOGS": "+dynamo"})
    out = proc.stderr + proc.stdout
    assert "resume is off: starting a new run" in out and "resumed the interrupted run" not in out
    assert "torchdynamo start compiling" not in out
    assert [e["epoch"] for e in read_history(root / "eval" / "history.json")] == [1, 2]


def test_3d_run_after_a_killed_2d_run_trains_and_leaves_the_2d_state(killed: Path, phantom_data: Path,
                                                                       tmp_path: Path) -> None:
    root = copy_of(killed, tmp_path)
    (state_2d,) = state_files(root)
    before = digest(state_2d)
    command = bundle_command("training", ["train.json", "train_3d.json"], root, "--dataset_dir", str(phantom_data),
                             *overrides(TINY_3D))
    proc = run_bundle(command)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "no saved state of this network configuration" in proc.stderr + proc.stdout
    assert digest(state_2d) == before
    assert len(state_files(root)) == 2 and (root / "models_3d" / "model.pt").is_file()


@pytest.mark.parametrize("value", ["maybe", "yes please"])
def test_an_unrecognised_boolean_is_a_one_line_error(killed: Path, phantom_data: Path, tmp_path: Path,
                                                    value: str) -> None:
    root = copy_of(killed, tmp_path)
    before = digest(state_files(root)[0])
    command = bundle_command("training", ["train.json", "demo_quick.json"], root, "--dataset_dir", str(phantom_data),
                             "--resume", value)
    proc = run_bundle(command)
    assert proc.returncode != 0
    assert last_line(proc) == (f"error: resume: {value!r} is not a boolean; expected true/false/True/False/1/0")
    assert "Traceback" not in proc.stderr
    assert digest(state_files(root)[0]) == before


def test_inference_with_other_network_settings_names_model_pt_and_what_to_pass(killed: Path, phantom_data: Path,
                                                                              tmp_path: Path) -> None:
    """The documented inference command without the training's overrides: one line naming model.pt, the differing
    settings and the overrides to pass; passing exactly those then works."""
    root = copy_of(killed, tmp_path)
    out = tmp_path / "predictions"
    base = bundle_command("run", ["inference.json"], root, "--input", str(phantom_data / "imagesTr"),
                          "--output_dir", str(out))
    proc = run_bundle(base)
    assert proc.returncode != 0
    line = last_line(proc)
    assert line.startswith(f"error: {root / 'models' / 'model.pt'}: this model does not fit the configured network")
    channels = TINY_BUNDLE_OVERRIDES["network_def#channels"]
    assert f"network_def#channels: trained {channels!r}, configured [32, 64, 128, 256, 512]" in line
    assert "pixdim: trained [6.0, 6.0], configured [1.5, 1.5]" in line
    assert "Traceback" not in proc.stderr and not out.exists()
    suggested = shlex.split(re.search(r"pass the training's settings: (.*?) \(or ", line).group(1))
    proc = run_bundle(base + suggested)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(list(out.glob("*_seg.nii.gz"))) == len(list((phantom_data / "imagesTr").glob("*.nii.gz")))


def test_a_bare_tensor_as_model_pt_is_one_line(killed: Path, phantom_data: Path, tmp_path: Path) -> None:
    import torch

    root = copy_of(killed, tmp_path)
    torch.save(torch.zeros(3), root / "models" / "model.pt")
    proc = run_bundle(bundle_command("run", ["inference.json", "demo_quick.json"], root,
                                     "--input", str(phantom_data / "imagesTr"), "--output_dir", str(tmp_path / "o")))
    assert proc.returncode != 0
    assert last_line(proc) == (
        f"error: {root / 'models' / 'model.pt'}: not a state dict (found Tensor); expected a dict of parameter names "
        "to tensors, as training writes (torch.save(network.state_dict(), ...))"
    )


def test_missing_input_is_the_last_line_and_debug_shows_the_traceback(killed: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    command = bundle_command("run", ["inference.json", "demo_quick.json"], killed, "--input", str(missing),
                             "--output_dir", str(tmp_path / "o"))
    proc = run_bundle(command)
    assert proc.returncode != 0
    assert last_line(proc).startswith("error: ") and str(missing) in last_line(proc)
    assert "Traceback" not in proc.stderr and "Failed to evaluate" not in proc.stderr
    debug = run_bundle(command, env={"SCSE_MONAI_DEBUG": "1"})
    assert "Traceback" in debug.stderr and last_line(debug) == last_line(proc)


def test_a_3d_roi_size_the_network_cannot_take_is_named(phantom_data: Path, tmp_path: Path) -> None:
    command = bundle_command("training", ["train.json", "train_3d.json"], tmp_path / "root", "--dataset_dir",
                             str(phantom_data), *overrides({**TINY_3D, "roi_size": [30, 32, 16]}))
    proc = run_bundle(command)
    assert proc.returncode != 0
    assert last_line(proc).startswith("error: roi_size [30, 32, 16] is not divisible by the network's down-sampling")
    assert "Traceback" not in proc.stderr
