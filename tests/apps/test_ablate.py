"""`scse-monai ablate` on the smallest setting: 2 variants x 2 test folds x 1 seed, the demo's quick override file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from scse_monai.apps.ablate import run_ablation
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError


@pytest.mark.slow
def test_ablation_nested_cross_validation(phantom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "abl"
    # CT and T2-SPIR only (2 of the phantom's 4 MR series dropped): 2 volumes per fold keep the 4 runs fast
    argv = ["ablate", str(phantom_data), "--out", str(out), "--variants", "none", "sse", "--folds", "0", "1",
            "--seeds", "0", "--config", "demo_quick", '--set=modalities=["ct", "t2spir"]', "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"report: {out / 'ablation.md'}"
    results = json.loads((out / "results.json").read_text())
    datalist = json.loads((phantom_data / "datalist.json").read_text())["training"]
    fold_of = {e["case"]: e["fold"] for e in datalist}

    # each test fold once; its validation fold is another one; groups disjoint, by fold
    assert [(s["test_fold"], s["validation_fold"]) for s in results["splits"]] == [(0, 1), (1, 2)]
    for split in results["splits"]:
        groups = [set(split[f"{k}_cases"]) for k in ("training", "validation", "test")]
        assert all(groups) and not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
        assert {fold_of[c] for c in groups[2]} == {split["test_fold"]}
        assert {fold_of[c] for c in groups[1]} == {split["validation_fold"]}
        assert {fold_of[c] for c in groups[0]} == set(split["training_folds"])
    tested = sorted(c for s in results["splits"] for c in s["test_cases"])
    assert results["test_cases"] == tested and len(set(tested)) == len(tested)

    for variant, net in results["networks"].items():
        assert sorted(net["per_case"]) == tested  # every tested case, scored by the run that held it out
        for split in results["splits"]:
            metrics = json.loads((out / "runs" / variant / f"test{split['test_fold']}" / "seed0" / "eval" /
                                  "chaos_metrics.json").read_text())
            assert sorted(metrics["cases"]) == sorted(split["test_cases"])
            for case in split["test_cases"]:
                assert net["per_case"][case]["mean"]["dice"] == pytest.approx(metrics["cases"][case]["mean"]["dice"])
    comparisons = results["comparison"]
    assert {c["variant"] for c in comparisons} == {"sse"} and {c["baseline"] for c in comparisons} == {"none"}
    overall = next(c for c in comparisons if c["metric"] == "dice" and c["organ"] == "overall")
    assert overall["n_cases"] == len(tested) and overall["p_value"] is None and "too few" in overall["reason"]

    with open(out / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["test_fold"], r["seed"]) for r in rows] == [
        ("none", "0", "0"), ("none", "1", "0"), ("sse", "0", "0"), ("sse", "1", "0")]
    runs = {(r["variant"], r["test_fold"]): float(r["score"]) for r in rows}
    mean, sd = results["summary"]["score"][1]
    assert mean == pytest.approx((runs["sse", "0"] + runs["sse", "1"]) / 2)
    assert sd == pytest.approx(abs(runs["sse", "0"] - runs["sse", "1"]) / 2**0.5)
    md = (out / "ablation.md").read_text()
    assert md.count("| none |") == 1 and md.count("| sse |") == 1 and " ± " in md and "### sse" in md
    assert (out / "ablation.html").is_file()
    with Image.open(out / "ablation.png") as im:
        assert im.format == "PNG"
    # a second call reuses the finished runs (no retraining): the model files are untouched
    model = out / "runs" / "sse" / "test0" / "seed0" / "models" / "model.pt"
    stamp = model.stat().st_mtime_ns
    run_ablation(phantom_data, out, ["sse"], [0], [0], ["demo_quick"], {"modalities": ["ct", "t2spir"]},
                 progress=False)
    assert model.stat().st_mtime_ns == stamp


def test_ablation_rejects_bad_requests(phantom_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="variants"):
        run_ablation(phantom_data, tmp_path, ["xse"], [0], progress=False)
    with pytest.raises(InvalidInputError, match="folds"):
        run_ablation(phantom_data, tmp_path, ["none"], [7], progress=False)
    with pytest.raises(InvalidInputError, match="seeds"):
        run_ablation(phantom_data, tmp_path, ["none"], [0], seeds=[], progress=False)
    with pytest.raises(InvalidInputError, match="datalist.json"):
        run_ablation(tmp_path, tmp_path / "o", ["none"], progress=False)


def test_ablation_needs_three_folds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    entries = [{"image": f"{c}.nii.gz", "label": f"{c}.nii.gz", "case": c, "fold": i % 2}
               for i, c in enumerate(["ct_1", "ct_2"])]
    (data / "datalist.json").write_text(json.dumps({"training": entries}))
    with pytest.raises(InvalidInputError, match="three or more"):
        run_ablation(data, tmp_path / "o", ["none"], progress=False)
