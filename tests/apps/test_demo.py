"""`scse-monai demo --quick` end to end, and the pieces of its analysis."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scse_monai.apps.demo import FIGURES, excitation_spread, se_layer_labels
from scse_monai.bundle_paths import BUNDLE_ENV, bundle_config, bundle_dir
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError
from scse_monai.networks import iter_se_layers
from scse_monai.networks.nets import SEUNet


@pytest.mark.slow
def test_quick_demo_writes_report_with_all_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"report: {out / 'report.md'}"
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for name in FIGURES.values():
        png = out / name
        assert png.stat().st_size > 0, name
        with Image.open(png) as im:
            im.verify()
            assert im.format == "PNG"
        assert f"({name})" in md and f'src="{name}"' in html
    mean = md.split("### mean over organs")[1]
    for metric in ("DICE", "RAVD %", "ASSD mm", "MSSD mm", "CHAOS score"):
        row = re.search(rf"^\| {re.escape(metric)} \| ([^|]+) \| ([^|]+) \|$", mean, re.M)
        assert row, metric
        float(row.group(1)), float(row.group(2))  # numbers for both networks
    for net in ("UNet", "SEUNet"):
        row = re.search(rf"^\| {net} \| ([\d,]+) \| ([\d,]+) \| ([+-][\d.]+) % \| ([\d.]+) \|$", md, re.M)
        assert row, net
        assert (int(row.group(2).replace(",", "")) > 0) == (net == "SEUNet")
    for run in ("unet", "seunet"):
        assert (out / "runs" / run / "models" / "model.pt").is_file()
        assert (out / "runs" / run / "eval" / "chaos_metrics.json").is_file()


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
    # the decoder labels carry the channel count of the layer's SE
    layers = dict(iter_se_layers(net))
    for name, label in labels.items():
        assert f"({layers[name].cse.fc[-2].out_features} ch)" in label


def test_bundle_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUNDLE_ENV, raising=False)
    assert (bundle_dir() / "configs" / "train.json").is_file()
    assert bundle_config("evaluate") == bundle_dir() / "configs" / "evaluate.json"
    monkeypatch.setenv(BUNDLE_ENV, str(tmp_path))
    with pytest.raises(InvalidInputError, match=BUNDLE_ENV):
        bundle_dir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text("{}")
    assert bundle_dir() == tmp_path.resolve()
    with pytest.raises(InvalidInputError, match="not found"):
        bundle_config("inference")
