"""The bundle through monai.bundle.ConfigWorkflow: train (and resume), infer, evaluate, the UNet baseline."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import monai
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.networks.nets import UNet

from scse_monai.apps.chaos.labels import ORGANS
from scse_monai.handlers import read_history
from scse_monai.metrics import METRIC_KEYS

from ..conftest import BUNDLE, TINY_BUNDLE_OVERRIDES

CONFIGS = BUNDLE / "configs"


def _workflow(config_file, workflow_type: str, **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=config_file,
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )


def _run(workflow: ConfigWorkflow) -> None:
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    workflow.run()
    workflow.finalize()


def state_file(root: Path) -> Path:
    """The one training state of a bundle root that trained one network (``train_state/last-<fingerprint>.pt``)."""
    (state,) = (root / "train_state").glob("last-*.pt")
    return state


def _network_def(**overrides):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update(overrides)
    return parser.get_parsed_content("network_def")


@pytest.fixture(scope="module")
def trained(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of training on the phantom; returns the bundle root holding models/ and eval/."""
    root = tmp_path_factory.mktemp("bundle_root")
    _run(_workflow(str(CONFIGS / "train.json"), "train", bundle_root=str(root), dataset_dir=str(phantom_data),
                   **TINY_BUNDLE_OVERRIDES))
    return root


def test_training_writes_a_strictly_loadable_state_dict(trained: Path) -> None:
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    net = _network_def(**{k: v for k, v in TINY_BUNDLE_OVERRIDES.items() if k.startswith("network_def")})
    net.load_state_dict(state, strict=True)  # every key of the checkpoint belongs to the network and vice versa
    history = read_history(trained / "eval" / "history.json")
    assert [e["epoch"] for e in history] == [1]
    assert np.isfinite(history[0]["loss"]) and "val_mean_dice" in history[0]
    assert {"val_chaos_score", *(f"val_dice_{o.replace(' ', '_')}" for o in ORGANS.values())} <= set(history[0])


def _train(root: Path, data: Path, **overrides) -> list[dict]:
    _run(_workflow(str(CONFIGS / "train.json"), "train", bundle_root=str(root), dataset_dir=str(data),
                   **{**TINY_BUNDLE_OVERRIDES, **overrides}))
    return read_history(root / "eval" / "history.json")


def test_training_state_lives_outside_models(trained: Path) -> None:
    """MONAI Label serves the first models/*.pt: models/ holds model.pt only, the resume state is elsewhere."""
    assert sorted(p.name for p in (trained / "models").iterdir()) == ["model.json", "model.pt"]
    state = torch.load(state_file(trained), weights_only=True)
    assert state["run"]["epoch"] == state["run"]["max_epochs"] == 1
    assert state["optimizer"]["state"], "optimizer state (Adam moments) must be saved for resuming"


@pytest.mark.parametrize("resume", [False, True])
def test_new_run_replaces_model_despite_better_earlier_record(
    trained: Path, phantom_data: Path, tmp_path: Path, resume: bool
) -> None:
    """A second training (another seed) writes model.pt from its own first validation, whatever came before.

    The earlier run's state is edited to record a perfect Dice (1.0); learning_rate 0 keeps the second run's
    parameters at their seed-1 initialisation, so model.pt must hold exactly those.
    """
    root = tmp_path / "root"
    shutil.copytree(trained, root)
    saved_state = state_file(root)
    state = torch.load(saved_state, weights_only=True)
    state["best_model"]["_saved"] = [(1.0, "model.pt")]
    torch.save(state, saved_state)
    history = _train(root, phantom_data, seed=1, learning_rate=0.0, resume=resume)
    assert [e["epoch"] for e in history] == [1] and history[0]["val_mean_dice"] < 1.0

    monai.utils.set_determinism(seed=1)
    fresh = _network_def(**{k: v for k, v in TINY_BUNDLE_OVERRIDES.items() if k.startswith("network_def")})
    monai.utils.set_determinism(seed=None)
    saved = torch.load(root / "models" / "model.pt", weights_only=True)
    for name, param in fresh.named_parameters():
        torch.testing.assert_close(saved[name], param.detach(), msg=name)
    before = torch.load(trained / "models" / "model.pt", weights_only=True)
    assert any(not torch.equal(before[k], saved[k]) for k in before)


def test_rerun_after_finished_run_trains_requested_epochs(trained: Path, phantom_data: Path, tmp_path: Path) -> None:
    """resume true (default) after a finished run: a new run of --epochs 2 trains 2 epochs, never nothing."""
    root = tmp_path / "root"
    shutil.copytree(trained, root)
    assert [e["epoch"] for e in _train(root, phantom_data, epochs=2)] == [1, 2]
    assert torch.load(state_file(root), weights_only=True)["run"]["epoch"] == 2


def test_inference_output_in_input_geometry(trained: Path, phantom_data: Path, tmp_path: Path) -> None:
    datalist = json.loads((phantom_data / "datalist.json").read_text())
    image = phantom_data / datalist["training"][0]["image"]
    out_dir = tmp_path / "pred"
    _run(_workflow(str(CONFIGS / "inference.json"), "infer", bundle_root=str(trained), input=str(image),
                   output_dir=str(out_dir), **{k: v for k, v in TINY_BUNDLE_OVERRIDES.items()
                                                if k.startswith("network_def") or k in ("pixdim", "roi_size")}))
    (pred_file,) = out_dir.glob("*.nii.gz")
    src, pred = nib.load(image), nib.load(pred_file)
    assert pred.shape == src.shape
    np.testing.assert_allclose(pred.affine, src.affine, atol=1e-4)
    values = np.unique(np.asarray(pred.dataobj))
    assert set(values.tolist()) <= {0, 1, 2, 3, 4}


def test_evaluate_writes_chaos_report(trained: Path, phantom_data: Path) -> None:
    _run(_workflow([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")], "train", bundle_root=str(trained),
                   dataset_dir=str(phantom_data), **TINY_BUNDLE_OVERRIDES))
    eval_dir = trained / "eval"
    report = json.loads((eval_dir / "chaos_metrics.json").read_text())
    assert report["cases"], "empty CHAOS report"
    # MONAI's MetricsSaver: the engine's metrics, and one (case x organ) table per CHAOS metric key
    saved = dict(line.split(",") for line in (eval_dir / "metrics.csv").read_text().splitlines())
    assert float(saved["val_chaos_score"]) == pytest.approx(report["mean"]["mean"]["score"])
    assert "val_mean_dice" in saved and "val_dice_liver" in saved
    for key in METRIC_KEYS:
        with open(eval_dir / f"chaos_{key}_raw.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["filename", *(f"class{i}" for i in range(len(ORGANS))), "mean"]
        assert len(rows) == len(report["cases"])
        for row in rows:
            case = report["cases"][Path(row["filename"]).name.split(".")[0]]
            for i, organ in enumerate(ORGANS.values()):
                expected = case[organ][key] if organ in case else math.nan
                assert float(row[f"class{i}"]) == pytest.approx(expected, abs=1e-4, nan_ok=True)
        assert (eval_dir / f"chaos_{key}_summary.csv").is_file()


def test_baseline_switch_trains_monai_unet(phantom_data: Path, tmp_path: Path) -> None:
    overrides = dict(TINY_BUNDLE_OVERRIDES)
    overrides["network_def#se"] = None
    _run(_workflow(str(CONFIGS / "train.json"), "train", bundle_root=str(tmp_path), dataset_dir=str(phantom_data),
                   **overrides))
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    unet = UNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(8, 16, 32, 64), strides=(2, 2, 2),
                num_res_units=1, norm="batch")
    assert list(state) == list(unet.state_dict())
    unet.load_state_dict(state, strict=True)
