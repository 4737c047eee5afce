"""`scse-monai demo --quick` end to end (results.json, report, figures) and the proof that selection never reads the
test fold."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from scse_monai.apps.chaos.labels import ORGANS
from scse_monai.apps.demo import (
    BASELINE,
    FIGURES,
    NETWORKS,
    DemoSettings,
    add_arguments,
    demo_settings,
    summary_markdown,
)
from scse_monai.apps.experiment import train_run
from scse_monai.bundle_paths import BUNDLE_ENV, bundle_config, bundle_dir
from scse_monai.cli import main
from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import METRIC_KEYS


@pytest.mark.slow
def test_quick_demo_writes_results_report_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"report: {out / 'report.md'}"
    results = json.loads((out / "results.json").read_text())

    # three disjoint, non-empty patient groups, matching the datalist's folds, every sequence of a patient in one
    groups = {k: results[f"{k}_cases"] for k in ("training", "validation", "test")}
    assert all(groups.values())
    assert sum(len(g) for g in groups.values()) == len(set().union(*map(set, groups.values())))
    datalist = json.loads((out / "data" / "datalist.json").read_text())["training"]
    fold_of = {e["case"]: e["fold"] for e in datalist}
    assert {fold_of[c] for c in groups["validation"]} == {results["folds"]["validation"]}
    assert {fold_of[c] for c in groups["test"]} == {results["folds"]["test"]}
    patient_group = {}
    for split, cases in groups.items():
        for case in cases:
            assert patient_group.setdefault(case.split("_t")[0], split) == split, case

    assert results["seeds"] == [0] and results["baseline"] == BASELINE
    assert set(results["networks"]) == set(NETWORKS)
    for name, net in results["networks"].items():
        # per-case results for the test cases only, each the mean over seeds of that seed's own chaos_metrics.json
        assert sorted(net["per_case"]) == groups["test"]
        run_metrics = json.loads((out / "runs" / name.lower() / "seed0" / "eval" / "chaos_metrics.json").read_text())
        assert sorted(run_metrics["cases"]) == groups["test"]
        for case, organs in net["per_case"].items():
            for organ, record in organs.items():
                assert set(record) == set(METRIC_KEYS)
                assert record["dice"] == pytest.approx(run_metrics["cases"][case][organ]["dice"])
        assert net["per_seed"]["0"]["per_case"] == net["per_case"]
        assert net["mean"]["mean"]["dice"] == pytest.approx(
            sum(c["mean"]["dice"] for c in net["per_case"].values()) / len(net["per_case"]))
        assert (net["se_parameters"] > 0) == (name != BASELINE)

    comparisons = results["comparison"]
    assert {(c["metric"], c["organ"]) for c in comparisons} == {
        (m, o) for m in ("dice", "score") for o in [*ORGANS.values(), "overall"]}
    for c in comparisons:
        assert {"metric", "mean_difference", "ci95", "p_value", "n_cases", "test"} <= set(c)
        # one test patient per modality: 4 liver cases, 3 kidney/spleen cases -> too few for a p-value
        assert c["p_value"] is None and "too few cases" in c["reason"]
    overall = next(c for c in comparisons if c["metric"] == "dice" and c["organ"] == "overall")
    nets = results["networks"]
    assert overall["mean_difference"] == pytest.approx(
        nets["SEUNet"]["mean"]["mean"]["dice"] - nets[BASELINE]["mean"]["mean"]["dice"])

    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for name in FIGURES.values():
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG"
        assert f"({name})" in md and f'src="{name}"' in html
    assert ", ".join(groups["test"]) in md and "too few cases" in md
    assert f"SEUNet - UNet, Dice (mean over organs) per test case: {overall['mean_difference']:+.3f}" in md
    mean = md.split("### mean over organs")[1]
    row = re.search(r"^\| DICE \| ([^|]+) \| ([^|]+) \|$", mean, re.M)
    assert row and float(row.group(1)) == pytest.approx(nets["UNet"]["mean"]["mean"]["dice"], abs=5e-4)
    assert "<table>" in html and "<h2>Protocol</h2>" in html


@pytest.mark.slow
def test_model_selection_never_reads_the_test_fold(phantom_data: Path, tmp_path: Path) -> None:
    """Training and validation (which selects model.pt) run with every test-fold file deleted."""
    data = tmp_path / "data"
    shutil.copytree(phantom_data, data)
    entries = json.loads((data / "datalist.json").read_text())["training"]
    test_fold, fold = 1, 0
    removed = [data / e[k] for e in entries if e["fold"] == test_fold for k in ("image", "label")]
    assert removed
    for path in removed:
        path.unlink()
    run = tmp_path / "run"
    train_run(run, data, ["demo_quick"], {"fold": fold, "test_fold": test_fold})
    assert torch.load(run / "models" / "model.pt", weights_only=True)
    # the same training with another test fold does want those files (MONAI wraps the error of the expression)
    with pytest.raises(RuntimeError, match="select_split") as error:
        train_run(tmp_path / "run2", data, ["demo_quick"], {"fold": fold, "test_fold": 2})
    assert isinstance(error.value.__cause__, InvalidInputError) and "missing" in str(error.value.__cause__)


def test_settings_and_epochs_help(capsys: pytest.CaptureFixture) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.print_help()
    text = " ".join(capsys.readouterr().out.split())
    epochs = json.loads(bundle_config("demo").read_text())["epochs"]
    assert f"default {epochs}" in text
    settings = demo_settings(seeds=[3, 4], epochs=5)
    assert settings.seeds == [3, 4] and settings.run_overrides(None, 3)["epochs"] == 5
    assert demo_settings(quick=True).config == "demo_quick"
    with pytest.raises(InvalidInputError, match="epochs"):
        demo_settings(epochs=0)
    with pytest.raises(InvalidInputError, match="seeds"):
        demo_settings(seeds=[1, 1])


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


def test_readme_results_are_the_shipped_results_json() -> None:
    """The README's demo table is ``summary_markdown`` of ``docs/demo/results.json``, and that run is the default."""
    root = Path(__file__).resolve().parents[2]
    results = json.loads((root / "docs" / "demo" / "results.json").read_text())
    assert summary_markdown(results) in (root / "README.md").read_text()
    default = DemoSettings()
    assert results["kind"] == "demo" and results["seeds"] == default.seeds
    assert results["data"] == {"n_ct": default.n_ct, "n_mr": default.n_mr, "size": default.size,
                               "folds": default.folds, "data_seed": default.data_seed}
    demo_json = json.loads((root / "bundle" / "configs" / "demo.json").read_text())
    assert results["config"]["epochs"] == demo_json["epochs"]
    groups = [set(results[f"{g}_cases"]) for g in ("training", "validation", "test")]
    assert all(groups) and not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
