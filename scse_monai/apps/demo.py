"""``scse-monai demo``: phantom -> convert -> train UNet and SEUNet through the bundle -> test-fold metrics -> report.

The README's first command, a thin runner over the bundle. On a fresh clone and 2 CPU cores it:

1. writes a small synthetic data set in the CHAOS layout (:func:`scse_monai.apps.chaos.phantom.make_phantom`);
2. converts it with the real converter into patient-level folds (all sequences of a patient in one fold), which give
   three disjoint patient groups: training folds, the validation fold (model selection: ``models/model.pt`` is the
   epoch with the best validation Dice) and the test fold (the only numbers reported);
3. trains the bundle (``train.json`` merged with the override file ``demo.json``, or ``demo_quick.json`` for
   ``--quick``) for each seed: plain MONAI UNet (``network_def#se`` null) and SEUNet with scSE (max-out, r = 2;
   Roy et al., TMI 2019), same data, seed and budget;
4. evaluates every run with ``evaluate.json`` on the test fold with the CHAOS metrics (Kavur et al., MedIA 2021);
   the first seed's evaluations run with an :class:`~scse_monai.apps.excitation_analysis.EvaluationCapture` on the
   bundle's evaluator, which records the predictions and SE gates the figures show;
5. compares the networks per test case (mean difference, bootstrap 95 % CI, Wilcoxon signed-rank;
   :mod:`scse_monai.apps.stats`) and writes ``DIR/results.json``;
6. draws the figures and renders ``DIR/report.md`` and ``DIR/report.html`` from ``results.json``
   (the text: :mod:`scse_monai.apps.demo_report`).

``DIR`` (default ``demo_output``, ``demo_quick_output`` for ``--quick``) must be new, empty, or an earlier demo's
folder of the same settings, which resumes (:func:`scse_monai.utils.output_dir.claim_output_dir`).

Every step shows a progress bar; the last line printed is ``report: <path>``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scse_monai.apps.chaos.labels import ORGANS
from scse_monai.apps.demo_report import FIGURES, build_demo_report, summary_markdown
from scse_monai.apps.design import check_seeds
from scse_monai.apps.experiment import (
    SE_VARIANTS,
    case_groups,
    compare_to_baseline,
    evaluate_run,
    median_epoch_time,
    prepare_run_dir,
    read_case_metrics,
    summarise_seeds,
    train_run,
)
from scse_monai.apps.report import write_report
from scse_monai.errors import InvalidInputError
from scse_monai.metrics.tables import results_to_json
from scse_monai.utils.io import atomic_write_text
from scse_monai.utils.output_dir import claim_output_dir

__all__ = [
    "NETWORKS",
    "BASELINE",
    "DEFAULT_OUT",
    "FIGURES",
    "DemoSettings",
    "demo_settings",
    "summary_markdown",
    "build_demo_report",
    "run_demo",
    "add_arguments",
    "run",
]

#: the two networks of the demo: name -> ``network_def#se``; the first is the baseline of the comparison.
NETWORKS: dict[str, Any] = {"UNet": SE_VARIANTS["none"], "SEUNet": SE_VARIANTS["scse"]}
BASELINE = "UNet"

#: default output folders of the full and the ``--quick`` demo (different: a quick run first never mixes with the full
#: run's data; a folder of other settings is refused anyway).
DEFAULT_OUT = {False: Path("demo_output"), True: Path("demo_quick_output")}

#: configuration values quoted in the report (read from the merged configuration of the run).
_REPORTED_CONFIG = ("epochs", "pixdim", "roi_size", "batch_size", "num_samples", "learning_rate",
                    "network_def#channels", "network_def#num_res_units")


@dataclass
class DemoSettings:
    """What determines a demo run besides the bundle override file (written to ``results.json``).

    Attributes:
        config: the bundle override file merged onto ``train.json`` (``demo`` or ``demo_quick``).
        n_ct: CT phantom patients.
        n_mr: MR phantom patients (3 sequences each: T1 in/out phase, T2-SPIR).
        size: in-plane CT size of the phantom (MR: 3/4 of it); ``None`` for 128 / 96.
        folds: patient-level folds of the conversion.
        fold: the validation fold (model selection).
        test_fold: the test fold (reported numbers).
        data_seed: phantom and fold-assignment seed.
        seeds: training seeds (one run per network and seed).
        epochs: overrides the file's ``epochs`` if set.
    """

    config: str = "demo"
    n_ct: int = 6
    n_mr: int = 6
    size: int | None = None
    folds: int = 3
    fold: int = 1
    test_fold: int = 0
    data_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    epochs: int | None = None

    def run_overrides(self, se: Any, seed: int) -> dict[str, Any]:
        """The bundle overrides of one run (on top of :attr:`config`)."""
        extra = {} if self.epochs is None else {"epochs": self.epochs}
        return {**extra, "seed": seed, "fold": self.fold, "test_fold": self.test_fold, "network_def#se": se}


def demo_settings(quick: bool = False, epochs: int | None = None, seeds: Sequence[int] | None = None) -> DemoSettings:
    """The default (or ``--quick``) settings, optionally with other epochs and seeds."""
    if quick:
        settings = DemoSettings(config="demo_quick", n_ct=3, n_mr=3, size=64, seeds=[0])
    else:
        settings = DemoSettings()
    if epochs is not None:
        if epochs < 1:
            raise InvalidInputError(f"--epochs {epochs}; expected a positive number")
        settings.epochs = epochs
    if seeds is not None:
        settings.seeds = check_seeds(seeds)
    return settings


def _excitation_summary(channel: Mapping[str, Any]) -> dict[str, Any]:
    """The spreads of :func:`~scse_monai.apps.excitation_analysis.channel_analysis` without the gate vectors."""
    return {grouping: {layer: {k: spread[k] for k in ("between", "within", "ratio", "counts")}
                       for layer, spread in channel[grouping].items()} for grouping in ("organ", "modality")}


def _figures(out: Path, results: Mapping[str, Any], histories: Mapping[str, Any], captures: Mapping[str, Any]) -> None:
    from scse_monai.apps import figures
    from scse_monai.apps.excitation_analysis import channel_analysis, pick_examples

    figures.plot_training_curves(histories, out / FIGURES["curves"])
    nets = results["networks"]
    baseline, variant = results["baseline"], [n for n in nets if n != results["baseline"]][-1]
    figures.plot_paired(nets[baseline]["per_case"], nets[variant]["per_case"], baseline, variant,
                        list(ORGANS.values()), out / FIGURES["paired"])
    first = next(iter(captures.values()))
    picks = pick_examples(first.volumes)
    examples = [{"image": first.volumes[v]["image"][..., k], "label": first.volumes[v]["label"][..., k],
                 "title": f"{first.volumes[v]['case']} z={k}"} for v, k in picks]
    predictions = {n: [c.volumes[v]["pred"][..., k] for v, k in picks] for n, c in captures.items()}
    figures.plot_examples(examples, predictions, out / FIGURES["examples"])
    se_name = next((n for n, c in captures.items() if c.layers), None)
    spatial_rows: list[dict[str, np.ndarray]] = [{} for _ in picks]
    windows = [{"image": first.volumes[v]["windows"][k], "title": ex["title"]} for (v, k), ex in zip(picks, examples,
                                                                                                    strict=True)]
    channel = {"organ": {}, "modality": {}}
    if se_name is not None:
        capture = captures[se_name]
        order = list(capture.layers)
        chosen = [order[i] for i in sorted({0, min(1, len(order) - 1), len(order) // 2, len(order) - 1})]
        spatial_rows = [{capture.layers[n]: capture.volumes[v]["spatial"][n][k] for n in chosen
                         if n in capture.volumes[v]["spatial"]} for v, k in picks]
        channel = channel_analysis(capture)
    figures.plot_spatial_attention(windows, spatial_rows, out / FIGURES["spatial"])
    for key, grouping in (("cse_organ", "organ"), ("cse_modality", "modality")):
        gates = {}
        for layer, spread in channel[grouping].items():
            if spread["means"]:
                n = np.array([spread["counts"][g] for g in spread["means"]], dtype=float)
                overall = (np.stack(list(spread["means"].values())) * n[:, None]).sum(0) / n.sum()
                gates[layer] = {**spread["means"], "all": overall}
        figures.plot_channel_excitations(gates, out / FIGURES[key])


def run_demo(
    out_dir: str | os.PathLike,
    quick: bool = False,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
) -> Path:
    """Run the whole demo into ``out_dir``; returns the path of ``report.md`` (``results.json`` beside it).

    ``out_dir`` must be new, empty, or an earlier demo's folder of the same settings (which resumes):
    :func:`~scse_monai.utils.output_dir.claim_output_dir`.

    Raises:
        InvalidInputError: for an unusable output folder (a file, other files, an earlier demo of other settings)
            or bundle.
    """
    from tqdm.auto import tqdm

    from scse_monai.apps.chaos.convert import convert_chaos
    from scse_monai.apps.chaos.phantom import make_phantom
    from scse_monai.apps.excitation_analysis import EvaluationCapture, channel_analysis
    from scse_monai.handlers import read_history
    from scse_monai.networks import count_parameters, count_se_parameters

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    settings = demo_settings(quick, epochs, seeds)
    out = claim_output_dir(out_dir, "demo", asdict(settings))
    settings_json = json.dumps(asdict(settings), sort_keys=True)
    jobs = [(name, seed) for name in NETWORKS for seed in settings.seeds]
    steps = ["phantom", "convert"] + [f"train {n} seed {s}" for n, s in jobs] + [f"evaluate {n} seed {s}"
                                                                                 for n, s in jobs]
    bar = tqdm(steps + ["figures", "report"], desc="demo", unit="step", disable=not progress)
    runs = {(n, s): out / "runs" / n.lower() / f"seed{s}" for n, s in jobs}
    try:
        bar.set_postfix_str("phantom")
        root = make_phantom(out / "phantom", n_ct=settings.n_ct, n_mr=settings.n_mr, seed=settings.data_seed,
                            size=settings.size, progress=progress)
        bar.update()
        bar.set_postfix_str("convert")
        report = convert_chaos(root, out / "data", folds=settings.folds, seed=settings.data_seed, progress=progress)
        if report.failed:
            raise InvalidInputError(f"phantom conversion failed: {report.failed}", out / "data")
        groups = case_groups(out / "data" / "datalist.json", settings.fold, settings.test_fold)
        bar.update()
        for name, seed in jobs:
            bar.set_postfix_str(f"train {name} seed {seed}")
            overrides = settings.run_overrides(NETWORKS[name], seed)
            prepare_run_dir(runs[name, seed], json.dumps({"settings": settings_json, "overrides": overrides},
                                                         sort_keys=True))
            train_run(runs[name, seed], out / "data", [settings.config], overrides, progress=progress)
            bar.update()
        per_seed: dict[str, dict[int, Any]] = {n: {} for n in NETWORKS}
        captures: dict[str, EvaluationCapture] = {}
        networks: dict[str, dict[str, Any]] = {}
        config: dict[str, Any] = {}
        for name, seed in jobs:
            bar.set_postfix_str(f"evaluate {name} seed {seed}")
            handlers = []
            if seed == settings.seeds[0]:
                captures[name] = EvaluationCapture()
                handlers.append(captures[name])
            try:
                workflow = evaluate_run(runs[name, seed], out / "data", [settings.config],
                                        settings.run_overrides(NETWORKS[name], seed), handlers, progress=progress)
            finally:
                for h in handlers:
                    h.close()
            per_seed[name][seed] = read_case_metrics(runs[name, seed])
            if sorted(per_seed[name][seed]) != groups["test"]:
                raise InvalidInputError(f"evaluated cases {sorted(per_seed[name][seed])}; expected the test fold's "
                                        f"{groups['test']}", runs[name, seed])
            if name not in networks:
                net = workflow.evaluator.network
                config = config or {k: workflow.parser.get_parsed_content(k) for k in _REPORTED_CONFIG}
                networks[name] = {"se": NETWORKS[name], "parameters": count_parameters(net),
                                  "se_parameters": count_se_parameters(net)}
            bar.update()
        bar.set_postfix_str("figures")
        histories = {f"{n} seed {s}": read_history(runs[n, s] / "eval" / "history.json") for n, s in jobs}
        for name in NETWORKS:
            epoch_times = [median_epoch_time(histories[f"{name} seed {s}"]) for s in settings.seeds]
            networks[name]["seconds_per_epoch"] = float(np.median(epoch_times))
            networks[name].update(summarise_seeds(per_seed[name]))
        se_name = next((n for n, c in captures.items() if c.layers), None)
        results: dict[str, Any] = {
            "kind": "demo",
            "data": {"n_ct": settings.n_ct, "n_mr": settings.n_mr, "size": settings.size, "folds": settings.folds,
                     "data_seed": settings.data_seed},
            "folds": {"training": sorted(set(range(settings.folds)) - {settings.fold, settings.test_fold}),
                      "validation": settings.fold, "test": settings.test_fold},
            "training_cases": groups["training"],
            "validation_cases": groups["validation"],
            "test_cases": groups["test"],
            "seeds": settings.seeds,
            "configs": ["train.json", f"{settings.config}.json", "evaluate.json"],
            "config": config,
            "baseline": BASELINE,
            "networks": networks,
            "comparison": compare_to_baseline(networks, BASELINE),
            "excitation": {} if se_name is None else {"network": se_name, "seed": settings.seeds[0],
                                                      **_excitation_summary(channel_analysis(captures[se_name]))},
        }
        _figures(out, results, histories, captures)
        bar.update()
        bar.set_postfix_str("report")
        results["time_s"] = time.perf_counter() - t0
        results["machine"] = {"cpus": os.cpu_count(), "load_average": [load0, os.getloadavg()[0]]}
        atomic_write_text(out / "results.json", results_to_json(results))
        results = json.loads((out / "results.json").read_text())  # the report shows exactly what was saved
        path = write_report(out, build_demo_report(results), title="scSE demo: UNet vs SEUNet")
        bar.update()
    finally:
        bar.close()
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai demo``."""
    from scse_monai.bundle_paths import bundle_config

    default = demo_settings()
    epochs = {}
    for config in (default.config, "demo_quick"):
        try:  # the help must not fail without a bundle; running then says what is missing
            epochs[config] = json.loads(bundle_config(config).read_text()).get("epochs", "the bundle's")
        except (InvalidInputError, OSError, ValueError):
            epochs[config] = f"from {config}.json"
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder: new, empty, or an earlier demo's of the same settings (default "
                             f"{DEFAULT_OUT[False]}; --quick: {DEFAULT_OUT[True]})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny phantom, one seed, bundle/configs/demo_quick.json (1 epoch; about a minute)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs of every run (default {epochs[default.config]}, from "
                             f"bundle/configs/{default.config}.json; --quick: {epochs['demo_quick']})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"training seeds, one run per network and seed (default {default.seeds}; --quick: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai demo``; prints ``report: <path>`` last."""
    out = DEFAULT_OUT[args.quick] if args.out is None else args.out
    path = run_demo(out, quick=args.quick, epochs=args.epochs, seeds=args.seeds, progress=not args.quiet)
    print(f"report: {path}")
    return 0
