"""A real MONAI Label 0.8.5 server (``monailabel start_server``, the ``monaibundle`` sample app) on 127.0.0.1.

The steps of ``bundle/docs/README.md``'s MONAI Label section, in its order and with its commands (asserted to be
in the README): the sample app from the installed wheel (``monailabel apps --download`` copies it, no network), the
bundle exported with ``scse-monai bundle``, one bundle training, the studies folder, the server, ``/info/``,
``/infer/<model>``, and two ``/train/<model>`` requests in a row, each of which must train its epochs and change the
served ``model.pt``. One deviation from the README, as a user would do on a small CPU: the exported copy's configs
are shrunk to the test sizes. The server is stopped by its PID.

Needs the ``label`` extra and ``pip install --no-deps monailabel==0.8.5 pydicom-seg==0.4.1`` (what CI installs);
skipped otherwise. Where no torchvision build matches the CPU torch, the server gets the TEST-ONLY stand-in.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from scse_monai.handlers import read_history

from ..conftest import BUNDLE
from .bundle_copy import shrink_configs
from .torchvision_standin import real_torchvision_works, write_torchvision_standin

pytest.importorskip("monailabel", reason="MONAI Label is not installed (see bundle/docs/README.md, MONAI Label)")
for _module in ("fastapi", "uvicorn", "pydicom_seg", "dicomweb_client", "schedule", "timeloop"):
    pytest.importorskip(_module, reason=f"the MONAI Label server needs {_module}: pip install -e '.[label]'")

pytestmark = pytest.mark.slow

MODEL = "scse_chaos_segmentation"
LABELS = {"liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
README = BUNDLE / "docs" / "README.md"
# the README's commands, verbatim (each must appear in the README)
APP_CMD = "monailabel apps --download --name monaibundle --output apps"
EXPORT_CMD = f"scse-monai bundle apps/monaibundle/model/{MODEL}"
SERVER_CMD = (f"monailabel start_server --app apps/monaibundle --studies studies --conf models {MODEL} "
              "--conf zoo_source github")
TRAIN_BODY = '{"device": "cpu", "max_epochs": 1, "val_split": 0.5}'
BUNDLE_TRAIN_CMD = (
    "python -m monai.bundle run training --meta_file configs/metadata.json --config_file configs/train.json "
    "--logging_file configs/logging.conf --bundle_root . --dataset_dir ../../../../data/chaos_nifti"
)


def _readme_text() -> str:
    return " ".join(README.read_text().replace("\\\n", " ").split())


def _readme_studies_script() -> str:
    """The README's step-3 Python script that copies a converted data set into ``studies/``, verbatim."""
    text = README.read_text()
    start = text.index("python - <<'EOF'\n") + len("python - <<'EOF'\n")
    return text[start : text.index("\nEOF\n", start)]


def _console(name: str) -> list[str]:
    """A console command of this interpreter's environment (``monailabel`` runs ``python -m monailabel.main``)."""
    if name == "monailabel":
        return [sys.executable, "-m", "monailabel.main"]
    return [sys.executable, "-m", "scse_monai"]


def _shell(cmd: str, cwd: Path, env: dict, timeout: float = 600) -> str:
    argv = cmd.split()
    argv = _console(argv[0]) + argv[1:]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: str | None = None, timeout: float = 600) -> bytes:
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        assert response.status == 200
        return response.read()


@pytest.fixture(scope="module")
def server(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The README's steps 2-4 in a fresh folder, then the server on a free port; stopped by PID afterwards."""
    text = _readme_text()
    for cmd in (APP_CMD, EXPORT_CMD, BUNDLE_TRAIN_CMD, SERVER_CMD, TRAIN_BODY):
        assert cmd in text, f"bundle/docs/README.md no longer says: {cmd}"
    work = tmp_path_factory.mktemp("monailabel_server")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not real_torchvision_works():
        standin = write_torchvision_standin(work / "test_only_torchvision")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(standin), env.get("PYTHONPATH")]))

    # 2. the app (shipped in the monailabel wheel) and the bundle
    prefix = [] if (Path(sys.prefix) / "monailabel").is_dir() else ["--prefix", sys.base_prefix]
    _shell(APP_CMD + " " + " ".join(prefix), work, env)
    _shell(EXPORT_CMD, work, env)
    bundle = work / "apps" / "monaibundle" / "model" / MODEL
    shrink_configs(bundle / "configs")
    # train once with the README's command in the bundle folder (+ --epochs 1), so model.pt exists at start-up
    (work / "data").mkdir()
    (work / "data" / "chaos_nifti").symlink_to(phantom_data, target_is_directory=True)
    cmd = [sys.executable] + BUNDLE_TRAIN_CMD.split()[1:] + ["--epochs", "1"]
    done = subprocess.run(cmd, cwd=bundle, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["model.json", "model.pt"]

    # 3. the studies: the README's script, verbatim
    done = subprocess.run([sys.executable, "-c", _readme_studies_script()], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    studies = work / "studies"
    cases = json.loads((phantom_data / "datalist.json").read_text())["training"]
    assert sorted(p.name for p in (studies / "labels" / "final").iterdir()) == sorted(
        f"{d['case']}.nii.gz" for d in cases)

    # 4. the server on 127.0.0.1 and a free port (SAM2 off: it would download weights)
    port = _free_port()
    argv = _console("monailabel") + SERVER_CMD.split()[1:] + ["--conf", "sam2", "false", "--host", "127.0.0.1",
                                                              "--port", str(port)]
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited ({proc.returncode}):\n{(work / 'server.log').read_text()[-5000:]}")
            try:
                info = json.loads(_request(f"{url}/info/", timeout=10))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError("server did not answer /info/ in time") from None
                time.sleep(1)
        yield SimpleNamespace(url=url, info=info, bundle=bundle, studies=studies, log=work / "server.log")
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # stop the server by its PID
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _infer(server: SimpleNamespace, case: str, out: Path) -> np.ndarray:
    """``/infer/<model>?image=<case>&output=image``; checks the label map against the input and returns it."""
    out.write_bytes(_request(f"{server.url}/infer/{MODEL}?image={case}&output=image", method="POST"))
    src, pred = nib.load(server.studies / f"{case}.nii.gz"), nib.load(out)
    assert pred.shape == src.shape
    np.testing.assert_allclose(pred.affine, src.affine, atol=1e-3)
    assert pred.get_data_dtype() == np.float32  # what the README says MONAI Label's writer returns
    values = np.asarray(pred.dataobj)
    assert set(np.unique(values).tolist()) <= {0, 1, 2, 3, 4}
    return values


def test_info_lists_the_bundle_with_its_four_organs(server: SimpleNamespace) -> None:
    model = server.info["models"][MODEL]
    assert model["labels"] == LABELS
    assert model["type"] == "segmentation" and model["dimension"] == 2
    assert MODEL in server.info["trainers"]


def test_infer_returns_label_map_in_input_geometry(server: SimpleNamespace, tmp_path: Path) -> None:
    values = _infer(server, "ct_1", tmp_path / "ct_1.nii.gz")
    assert values.any(), "an all-background prediction: the served model did not load"


def _train(server: SimpleNamespace, body: str) -> tuple[list[int], dict]:
    before = (server.bundle / "models" / "model.pt").read_bytes()
    _request(f"{server.url}/train/{MODEL}?run_sync=true", method="POST", body=body)
    after = (server.bundle / "models" / "model.pt").read_bytes()
    assert after != before, "the training request did not write a new model.pt"
    assert sorted(p.name for p in (server.bundle / "models").iterdir()) == ["model.json", "model.pt"]
    history = read_history(server.bundle / "eval" / "history.json")
    (state,) = (server.bundle / "train_state").glob("last-*.pt")
    return [e["epoch"] for e in history], torch.load(state, weights_only=True)


def test_two_training_requests_in_a_row_both_train(server: SimpleNamespace, tmp_path: Path) -> None:
    epochs, state = _train(server, TRAIN_BODY)
    assert epochs == [1] and state["run"]["epoch"] == state["run"]["max_epochs"] == 1
    epochs, state = _train(server, TRAIN_BODY.replace('"max_epochs": 1', '"max_epochs": 2'))
    assert epochs == [1, 2] and state["run"]["epoch"] == state["run"]["max_epochs"] == 2

    # what the server now serves is the model.pt of the last request: equal to the bundle's own inference with it
    served = _infer(server, "mr_2_t2spir", tmp_path / "served.nii.gz")
    workflow = ConfigWorkflow(
        config_file=str(server.bundle / "configs" / "inference.json"),
        meta_file=str(server.bundle / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(server.bundle),
        input=str(server.studies / "mr_2_t2spir.nii.gz"),
        output_dir=str(tmp_path / "bundle_pred"),
        device="cpu",
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    (own,) = (tmp_path / "bundle_pred").glob("*.nii.gz")
    np.testing.assert_array_equal(served, np.asarray(nib.load(own).dataobj))
