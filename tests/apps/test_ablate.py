"""`scse-monai ablate` on the smallest setting: 2 variants x 2 folds, one epoch, a tiny network."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from scse_monai.apps.ablate import run_ablation
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError

from ..conftest import TINY_BUNDLE_OVERRIDES

# CT and T2-SPIR only (2 of the phantom's 4 MR series dropped): 2 volumes per fold keep 4 runs fast.
OVERRIDES = {**TINY_BUNDLE_OVERRIDES, "modalities": ["ct", "t2spir"]}


@pytest.mark.slow
def test_ablation_two_variants_two_folds(phantom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "abl"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in OVERRIDES.items()]
    argv = ["ablate", str(phantom_data), "--out", str(out), "--variants", "none", "sse", "--folds", "0", "1",
            "--quiet", *sets]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"report: {out / 'ablation.md'}"
    with open(out / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["fold"]) for r in rows] == [("none", "0"), ("none", "1"), ("sse", "0"), ("sse", "1")]
    for r in rows:  # each row is that run's own chaos_metrics.json
        metrics = json.loads((out / "runs" / r["variant"] / f"fold{r['fold']}" / "eval" / "chaos_metrics.json")
                             .read_text())
        assert float(r["dice_liver"]) == pytest.approx(metrics["mean"]["liver"]["dice"])
        assert float(r["score"]) == pytest.approx(metrics["mean"]["mean"]["score"])
    md = (out / "ablation.md").read_text()
    assert md.count("| none |") == 1 and md.count("| sse |") == 1 and (out / "ablation.html").is_file()
    with Image.open(out / "ablation.png") as im:
        assert im.format == "PNG"
    # a second call reuses the finished runs (no retraining): the model files are untouched
    model = out / "runs" / "sse" / "fold0" / "models" / "model.pt"
    stamp = model.stat().st_mtime_ns
    run_ablation(phantom_data, out, ["sse"], [0], {**OVERRIDES, "seed": 0}, progress=False)
    assert model.stat().st_mtime_ns == stamp


def test_ablation_rejects_bad_variants_and_folds(phantom_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="variants"):
        run_ablation(phantom_data, tmp_path, ["xse"], [0], progress=False)
    with pytest.raises(InvalidInputError, match="folds"):
        run_ablation(phantom_data, tmp_path, ["none"], [7], progress=False)
    with pytest.raises(InvalidInputError, match="datalist.json"):
        run_ablation(tmp_path, tmp_path / "o", ["none"], progress=False)
