"""The 3D overlays (SEDynUNet on 3D patches): the commands of bundle/docs/README.md's 3D subsection, on the phantom."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_net_in_out
from monai.networks.nets import DynUNet

from scse_monai.handlers import read_history
from scse_monai.networks import iter_se_layers
from scse_monai.networks.nets import SEDynUNet

from ..conftest import BUNDLE
from .test_bundle_readme_commands import README, _run

CONFIGS = BUNDLE / "configs"
# A tiny 3-level network on 32 x 32 x 16 patches of the phantom at 8 x 8 x 10 mm: seconds on a CPU. The bundle ships it
# as the README's quick 3D check; read here rather than copied.
TINY_3D = {k: v for k, v in json.loads((CONFIGS / "quick_3d.json").read_text()).items() if not k.startswith("_")}
NET_KEYS = ("network_def", "pixdim", "roi_size")


def readme_3d_commands() -> dict[str, list[str]]:
    """The commands of the README's "3D variant" subsection, keyed by what they run."""
    section = README.read_text().split("### 3D variant", 1)[1].split("\n### ", 1)[0]
    lines = [ln for block in re.findall(r"```shell\n(.*?)```", section, flags=re.S) for ln in block.splitlines()]
    keyed = {}
    for line in lines:
        words = shlex.split(line)
        key = ("verify_net_in_out" if "verify_net_in_out" in words else "evaluate" if "evaluate.json" in line
               else "inference" if "inference_3d.json" in line else words[words.index("run") + 1])
        keyed[key] = words
    return keyed


def _overrides(keys: tuple[str, ...] | None = None) -> list[str]:
    return [a for k, v in TINY_3D.items() if keys is None or k.startswith(keys) for a in (f"--{k}", json.dumps(v))]


def _parser(*files: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser.update(overrides)
    return parser


def test_readme_lists_the_3d_commands() -> None:
    commands = readme_3d_commands()
    assert set(commands) == {"training", "evaluate", "inference", "verify_net_in_out"}
    assert "['bundle/configs/train.json','bundle/configs/train_3d.json']" in commands["training"]


def test_overlays_agree_and_override_named_ids_only() -> None:
    train = json.loads((CONFIGS / "train_3d.json").read_text())
    infer = json.loads((CONFIGS / "inference_3d.json").read_text())
    for key in (*NET_KEYS, "ckpt_dir"):
        assert train[key] == infer[key], key
    base_train = ConfigParser(json.loads((CONFIGS / "train.json").read_text()))
    base_infer = ConfigParser(json.loads((CONFIGS / "inference.json").read_text()))
    for overlay, base in ((train, base_train), (infer, base_infer)):
        for key in overlay:
            if key != "_desc_":
                assert key in base, f"{key} is not an id of the base config"
                assert not re.search(r"#\d+(#|$)", key), f"{key} overrides by list position"


def test_3d_augmentation_shares_the_2d_steps_after_the_spatial_ones() -> None:
    """Only the crop and the affine differ from train.json: what follows them (intensity, typing) is the same."""

    def after_affine(transforms: list) -> list:
        targets = [t.get("_target_") for t in transforms]
        return transforms[targets.index("RandAffined") + 1:]

    base = json.loads((CONFIGS / "train.json").read_text())["train"]["random_transforms"]
    overlay = json.loads((CONFIGS / "train_3d.json").read_text())["train#random_transforms"]
    assert after_affine(overlay) == after_affine(base), "update train_3d.json's random_transforms like train.json's"


def test_network_is_sedynunet_and_se_null_is_monai_dynunet() -> None:
    net = _parser("train.json", "train_3d.json").get_parsed_content("network_def")
    assert isinstance(net, SEDynUNet) and net.spatial_dims == 3
    assert net.upsample_kernel_size == net.strides[1:]
    assert len(list(iter_se_layers(net))) == 2 * len(net.strides) - 1  # 4 encoders, bottleneck, 4 decoders
    parser = _parser("train.json", "train_3d.json", **{"network_def#se": None})
    plain = parser.get_parsed_content("network_def")
    args = {k: v for k, v in parser.get("network_def").items() if not k.startswith("_") and k != "se"}
    args = dict(args, out_channels=parser.get_parsed_content("num_classes"),
                upsample_kernel_size=parser.get_parsed_content("network_def#upsample_kernel_size"))
    assert list(plain.state_dict()) == list(DynUNet(**args).state_dict())


def test_verify_net_in_out_3d() -> None:
    """The README's verify_net_in_out command, in-process (the full-size 3D network; raises on a mismatch)."""
    words = readme_3d_commands()["verify_net_in_out"]
    arg = {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--")}
    assert "--n" not in arg, "metadata_3d.json's shapes pass at verify_net_in_out's default n=1, as model-zoo runs it"
    repo = BUNDLE.parent
    configs = json.loads(arg["--config_file"].replace("'", '"'))
    verify_net_in_out("network_def", meta_file=str(repo / arg["--meta_file"]),
                      config_file=[str(repo / f) for f in configs])


@pytest.fixture(scope="module")
def trained_3d(phantom_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle_3d")
    _run(readme_3d_commands()["training"], root, phantom_data, _overrides())
    return root


def test_training_3d_from_the_cli(trained_3d: Path) -> None:
    state = torch.load(trained_3d / "models_3d" / "model.pt", weights_only=True)
    parser = _parser("inference.json", "inference_3d.json", **{k: v for k, v in TINY_3D.items()
                                                                  if k.startswith(NET_KEYS)})
    parser.get_parsed_content("network_def").load_state_dict(state, strict=True)
    assert any(".sse." in k for k in state)
    history = read_history(trained_3d / "eval_3d" / "history.json")
    assert [e["epoch"] for e in history] == [1]
    assert np.isfinite(history[0]["loss"]) and "val_mean_dice" in history[0]


def test_evaluate_3d_writes_chaos_report(trained_3d: Path, phantom_data: Path) -> None:
    _run(readme_3d_commands()["evaluate"], trained_3d, phantom_data, _overrides())
    report = json.loads((trained_3d / "eval_3d" / "chaos_metrics.json").read_text())
    text = json.dumps(report["mean"])
    for key in ("dice", "ravd", "assd", "mssd", "score"):
        assert f'"{key}"' in text


def test_inference_3d_output_in_input_geometry(trained_3d: Path, phantom_data: Path, tmp_path: Path) -> None:
    image = phantom_data / "imagesTr" / "mr_1_t2spir.nii.gz"
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / "inference.json"), str(CONFIGS / "inference_3d.json")],
        meta_file=str(CONFIGS / "metadata.json"), logging_file=str(CONFIGS / "logging.conf"), workflow_type="infer",
        bundle_root=str(trained_3d), input=str(image), output_dir=str(tmp_path),
        **{k: v for k, v in TINY_3D.items() if k.startswith(NET_KEYS)})
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    workflow.run()
    workflow.finalize()
    (pred_file,) = tmp_path.glob("*_seg.nii.gz")
    src, pred = nib.load(image), nib.load(pred_file)
    assert pred.shape == src.shape
    np.testing.assert_allclose(pred.affine, src.affine, atol=1e-4)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3, 4}
