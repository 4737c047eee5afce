"""The bundle in MONAI Label 0.8.5: the real ``BundleInferTask`` / ``BundleTrainTask`` / ``LocalDatastore``.

Nothing of MONAI Label is re-implemented here: the bundle is copied, unmodified apart from the tiny test sizes, into
a ``monaibundle``-style app folder (``<app>/model/scse_chaos_segmentation``) and driven the way the server drives it
(BUNDLE.md §6). Requires the ``label`` extra plus ``pip install --no-deps monailabel==0.8.5 pydicom-seg==0.4.1``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import monai
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from scse_monai.handlers import read_history

from ..conftest import BUNDLE, TINY_BUNDLE_OVERRIDES
from .bundle_copy import shrink_configs
from .torchvision_standin import real_torchvision_works, write_torchvision_standin

pytest.importorskip(
    "monailabel",
    reason="MONAI Label is not installed; install it with: pip install -e '.[label]' && "
    "pip install --no-deps monailabel==0.8.5",
)

MODEL_NAME = "scse_chaos_segmentation"  # MONAI Label derives the task type from the folder name ("segmentation")
EXPECTED_LABELS = {"liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
# one CT and one MR case per patient: 4 pairs, split 2 / 2 by val_split=0.5
CASES = ("ct_1", "ct_2", "mr_1_t2spir", "mr_2_t2spir")
NETWORK_OVERRIDES = {k: v for k, v in TINY_BUNDLE_OVERRIDES.items() if k.startswith("network_def")}

@pytest.fixture(scope="module")
def ml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """MONAI Label's task and datastore classes, imported with a torchvision stand-in only if none works here."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    if not real_torchvision_works():
        sys.path.insert(0, str(write_torchvision_standin(tmp_path_factory.mktemp("torchvision_standin"))))
    try:
        from monailabel.datastore.local import LocalDatastore
        from monailabel.tasks.infer.bundle import BundleInferTask
        from monailabel.tasks.train.bundle import BundleTrainTask
        from monailabel.utils.others.generic import get_bundle_models

        yield SimpleNamespace(
            LocalDatastore=LocalDatastore,
            BundleInferTask=BundleInferTask,
            BundleTrainTask=BundleTrainTask,
            get_bundle_models=get_bundle_models,
        )
    finally:
        sys.path[:] = saved_path
        # drop the stand-in and every MONAI Label module bound to it, so nothing later sees either
        for name in set(sys.modules) - saved_modules:
            if name.partition(".")[0] in ("torchvision", "monailabel"):
                del sys.modules[name]


def _drop_image_path_workaround(name: str, config: dict) -> None:
    if name == "inference.json":
        transforms = config["preprocessing"]["transforms"]
        config["preprocessing"]["transforms"] = [
            t for t in transforms if t["_target_"] not in ("CopyItemsd", "DeleteItemsd")
        ]
        assert len(config["preprocessing"]["transforms"]) == len(transforms) - 4


def _copy_bundle(dest: Path, drop_image_path_workaround: bool = False) -> Path:
    """Copy the bundle's configs and shrink them (a user edit of the copy, not an override MONAI Label passes)."""
    shutil.copytree(BUNDLE / "configs", dest / "configs")
    shrink_configs(dest / "configs", _drop_image_path_workaround if drop_image_path_workaround else None)
    return dest


def _network_def() -> torch.nn.Module:
    """The bundle's network from the repository's inference.json with the test sizes (independent of the copy)."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update(NETWORK_OVERRIDES)
    return parser.get_parsed_content("network_def")


def _datalist_entry(phantom_data: Path, case: str) -> dict:
    datalist = json.loads((phantom_data / "datalist.json").read_text())
    (entry,) = [d for d in datalist["training"] if d["case"] == case]
    return entry


@pytest.fixture(scope="module")
def trained_bundle(ml: SimpleNamespace, phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of BundleTrainTask on a LocalDatastore of phantom NIfTI pairs; returns the app's bundle folder."""
    base = tmp_path_factory.mktemp("monailabel")
    bundle = _copy_bundle(base / "app" / "model" / MODEL_NAME)
    studies = base / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for case in CASES:
        entry = _datalist_entry(phantom_data, case)
        # MONAI Label pairs an image with the label file of the same name under labels/final
        shutil.copyfile(phantom_data / entry["image"], studies / f"{case}.nii.gz")
        shutil.copyfile(phantom_data / entry["label"], studies / "labels" / "final" / f"{case}.nii.gz")

    datastore = ml.LocalDatastore(str(studies), extensions=("*.nii.gz", "*.nii"), auto_reload=False)
    assert sorted(Path(d["image"]).name for d in datastore.datalist()) == sorted(f"{c}.nii.gz" for c in CASES)

    # how the monaibundle app finds the bundle; zoo_source other than "monaihosting" needs no network (BUNDLE.md §8)
    app = bundle.parents[1]
    assert ml.get_bundle_models(str(app), {"models": MODEL_NAME, "zoo_source": "github"}) == {MODEL_NAME: str(bundle)}
    # no weights yet: MONAI Label ignores the bundle for inference (the README tells users to restart after training)
    assert not ml.BundleInferTask(str(bundle), {}).is_valid()

    task = ml.BundleTrainTask(str(bundle), {})
    assert task.is_valid()
    assert task.config()["max_epochs"] == 50  # MONAI Label's option panel default, overridden by the request below
    assert not (bundle / "models" / "model.pt").exists()
    request = {"model": MODEL_NAME, "device": "cpu", "max_epochs": 1, "val_split": 0.5, "multi_gpu": False}
    task(request, datastore)
    return bundle


def test_training_writes_checkpoint_whose_keys_all_load(trained_bundle: Path) -> None:
    checkpoint = trained_bundle / "models" / "model.pt"
    assert checkpoint.is_file()
    state = torch.load(checkpoint, weights_only=True)
    state = state.get("model", state)  # the two layouts MONAI Label accepts
    net = _network_def()
    # MONAI Label itself loads with strict=False and only warns: a renamed layer would serve random weights
    net.load_state_dict(state, strict=True)
    assert set(state) == set(net.state_dict())
    # exactly the one epoch MONAI Label asked for (train.json says more), validated on the datastore's split
    history = read_history(trained_bundle / "eval" / "history.json")
    assert json.loads((trained_bundle / "configs" / "train.json").read_text())["epochs"] > 1
    assert [e["epoch"] for e in history] == [1]
    assert np.isfinite(history[0]["loss"]) and "val_mean_dice" in history[0]


def test_infer_task_reads_labels_and_task_type_from_metadata(ml: SimpleNamespace, trained_bundle: Path) -> None:
    task = ml.BundleInferTask(str(trained_bundle), {})
    assert task.is_valid()
    assert task.labels == EXPECTED_LABELS
    assert task.type == "segmentation"  # InferType is a str enum; derived from the folder name
    metadata = json.loads((trained_bundle / "configs" / "metadata.json").read_text())
    assert task.dimension == len(metadata["network_data_format"]["inputs"]["image"]["spatial_shape"])
    assert task.info()["version"] == metadata["version"]


@pytest.mark.parametrize("case", ["ct_1", "mr_2_t2spir"])
def test_infer_task_returns_label_map_in_input_geometry(
    ml: SimpleNamespace, trained_bundle: Path, phantom_data: Path, case: str
) -> None:
    image = phantom_data / _datalist_entry(phantom_data, case)["image"]
    task = ml.BundleInferTask(str(trained_bundle), {})
    result_file, result_json = task({"image": str(image), "device": "cpu"})
    try:
        src, pred = nib.load(image), nib.load(result_file)
        assert pred.ndim == 3 and pred.shape == src.shape
        np.testing.assert_allclose(pred.affine, src.affine, atol=1e-3)
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3, 4}
    finally:
        Path(result_file).unlink()
    assert result_json["label_names"] == EXPECTED_LABELS
    # the network MONAI Label served holds exactly the trained checkpoint (its non-strict load dropped nothing)
    served, _mtime = task._networks["cpu"]
    trained = torch.load(trained_bundle / "models" / "model.pt", weights_only=True)
    assert served.state_dict().keys() == trained.keys()
    for key, value in trained.items():
        torch.testing.assert_close(served.state_dict()[key], value, msg=key)


@pytest.mark.skipif(not monai.__version__.startswith("1.6"), reason="the Spacingd metadata sync is monai 1.6 code")
def test_inference_json_needs_its_image_path_workaround(
    ml: SimpleNamespace, trained_bundle: Path, phantom_data: Path, tmp_path: Path
) -> None:
    """Without the CopyItemsd/DeleteItemsd around Spacingd, MONAI Label's string ``image_path`` breaks Spacingd."""
    bundle = _copy_bundle(tmp_path / "app" / "model" / MODEL_NAME, drop_image_path_workaround=True)
    shutil.copytree(trained_bundle / "models", bundle / "models")
    image = phantom_data / _datalist_entry(phantom_data, "ct_1")["image"]
    task = ml.BundleInferTask(str(bundle), {})
    with pytest.raises(Exception) as excinfo:
        task({"image": str(image), "device": "cpu"})
    chain, err = [], excinfo.value
    while err is not None:
        chain.append(f"{type(err).__name__}: {err}")
        err = err.__cause__ or err.__context__
    assert any("AttributeError: 'str' object has no attribute 'update'" in line for line in chain), chain
