"""Gate capture on the bundle's evaluator: the gates per slice, the examples and the spread statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.engines import SupervisedEvaluator
from monai.inferers import SliceInferer
from monai.networks.nets import UNet

from scse_monai.apps.excitation_analysis import (
    EvaluationCapture,
    channel_analysis,
    excitation_spread,
    pick_examples,
    se_layer_labels,
)
from scse_monai.errors import InvalidInputError
from scse_monai.networks import capture_excitations, iter_se_layers
from scse_monai.networks.nets import SEUNet


def _evaluator(net: torch.nn.Module, volumes: list[dict], roi: int) -> SupervisedEvaluator:
    return SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=volumes, network=net,
                               inferer=SliceInferer(roi_size=(roi, roi), sw_batch_size=3, spatial_dim=2))


def _volume(seed: int, modality: str, shape=(16, 16, 5)) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.zeros((1, 1, *shape))
    label[..., 2:9, 3:10, :] = 1
    label[..., 10:14, 10:14, 1:4] = 4
    image = MetaTensor(torch.rand((1, *shape), generator=g), meta={"filename_or_obj": f"/d/{modality}_{seed}.nii.gz"})
    return {"image": list_data_collate([{"image": image}])["image"], "label": label, "modality": [modality]}


def test_capture_on_the_evaluator_matches_a_direct_forward_pass() -> None:
    torch.manual_seed(0)
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(4, 8, 16), strides=(2, 2)).eval()
    volumes = [_volume(1, "ct"), _volume(2, "t2spir")]
    evaluator = _evaluator(net, volumes, roi=16)
    capture = EvaluationCapture()
    capture.attach(evaluator)
    evaluator.run()
    assert [(v["case"], v["modality"]) for v in capture.volumes] == [("ct_1", "ct"), ("t2spir_2", "t2spir")]
    assert capture.layers == se_layer_labels(net)
    for vol, src in zip(capture.volumes, volumes, strict=True):
        slices = src["image"][0].permute(3, 0, 1, 2)  # (Z, 1, X, Y): what SliceInferer feeds the network
        with torch.no_grad():
            expected_pred = net(slices).argmax(1).permute(1, 2, 0).numpy()
        records = capture_excitations(net, slices)
        np.testing.assert_array_equal(vol["pred"], expected_pred)
        np.testing.assert_allclose(vol["windows"], slices[:, 0].numpy(), atol=1e-3)  # float16 copy
        for name, record in records.items():
            np.testing.assert_allclose(vol["channel"][name], record.channel.numpy(), atol=1e-6)
            np.testing.assert_allclose(vol["spatial"][name], record.spatial[:, 0].numpy(), atol=1e-3)
        assert vol["label"].shape == (16, 16, 5) and vol["image"].shape == (16, 16, 5)
    # hooks are gone after the run: the network's forward is untouched
    assert not net._forward_hooks and all(not m._forward_hooks for m in net.modules())
    analysis = channel_analysis(capture, min_pixels=5)
    assert list(analysis["modality"]) == list(capture.layers.values())
    assert analysis["modality"][capture.layers[next(iter(capture.layers))]]["counts"] == {"ct": 5, "t2spir": 5}


def test_capture_of_a_network_without_se_and_a_window_mismatch() -> None:
    net = UNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(4, 8), strides=(2,)).eval()
    evaluator = _evaluator(net, [_volume(1, "ct")], roi=16)
    capture = EvaluationCapture()
    capture.attach(evaluator)
    evaluator.run()
    assert capture.layers == {} and capture.volumes[0]["channel"] == {}
    assert channel_analysis(capture) == {"labels": {}, "organ": {}, "modality": {}}
    small = _evaluator(net, [_volume(1, "ct")], roi=8)  # 4 windows per slice
    capture = EvaluationCapture()
    capture.attach(small)
    try:
        with pytest.raises(InvalidInputError, match="one window per slice"):
            small.run()
    finally:
        capture.close()
    assert not net._forward_hooks


def test_pick_examples_prefers_large_areas_in_different_cases() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    a[:4, :4, 1] = 1  # liver, 16 px at z=1
    a[:2, :2, 2] = 1
    b = np.zeros((8, 8, 3), np.uint8)
    b[:5, :5, 0] = 1  # larger liver at z=0
    b[5:, 5:, 2] = 4  # spleen 9 px at z=2
    vols = [{"case": "a", "label": a}, {"case": "b", "label": b}]
    assert pick_examples(vols, min_pixels=5) == [(1, 0), (1, 2)]
    assert pick_examples(vols, min_pixels=20) == [(1, 0)]


def test_excitation_spread_between_and_within() -> None:
    gates = [np.array([0.2, 0.8]), np.array([0.4, 0.8]), np.array([0.6, 0.2]), np.array([0.8, 0.2]),
             np.array([0.5, 0.5])]
    groups = ["a", "a", "b", "b", None]
    out = excitation_spread(gates, groups)
    np.testing.assert_allclose(out["means"]["a"], [0.3, 0.8])
    np.testing.assert_allclose(out["means"]["b"], [0.7, 0.2])
    # sd of the two group means per channel: |0.3-0.7|/2 and |0.8-0.2|/2 -> mean 0.25
    assert out["between"] == pytest.approx(0.25)
    # pooled within sd: channel 0 residuals +-0.1 (4 values, 2 groups -> dof 2): sqrt(0.04/2); channel 1: 0
    assert out["within"] == pytest.approx(np.sqrt(0.04 / 2) / 2)
    assert out["counts"] == {"a": 2, "b": 2}
    single = excitation_spread(gates[:2], ["a", "a"])
    assert np.isnan(single["between"]) and np.isnan(single["ratio"])


def test_se_layer_labels_follow_the_unet_layout() -> None:
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16, 32), strides=(2, 2, 2))
    labels = se_layer_labels(net)
    assert list(labels) == [n for n, _ in iter_se_layers(net)]
    assert list(labels.values()) == ["enc1 (4 ch)", "enc2 (8 ch)", "enc3 (16 ch)", "bottleneck (32 ch)",
                                     "dec2 (8 ch)", "dec1 (4 ch)"]
    layers = dict(iter_se_layers(net))
    for name, label in labels.items():
        assert f"({layers[name].cse.fc[-2].out_features} ch)" in label
