"""``scse-monai ablate``: none / cSE / sSE / scSE (and scSE's aggregations) with nested cross-validation.

The analogue of Roy et al.'s Table III (TMI 2019: Dice of each network without SE and with cSE, sSE, scSE) and Table
II (scSE aggregations) for whatever converted data set the user has, the real CHAOS set included::

    scse-monai ablate DATA_DIR --out DIR [--folds 0 1 2] [--variants none cse sse scse] [--seeds 0 1]
                      [--config demo_quick] [--epochs N] [--pixdim X Y] ...

``DATA_DIR`` is the output folder of ``scse-monai convert`` (``datalist.json`` with patient-level folds, at least
three). Nested cross-validation: each fold of ``--folds`` is the test fold once; the fold after it (cyclically) is
the validation fold, which selects ``models/model.pt``; the remaining folds train. Every variant x test fold x seed
is trained with the bundle's ``train.json`` (plus the ``--config`` override files) and evaluated with
``evaluate.json`` on its test fold, in ``DIR/runs/<variant>/test<k>/seed<s>`` (a finished run with the same settings
is reused, an interrupted one resumes). Every tested case is thus scored once per seed by a model that never saw it,
neither in training nor in selection.

Written: ``DIR/results.json`` (case groups of every split, per-case metrics averaged over seeds with the per-seed
values beside, mean ± sd over test folds and seeds, paired comparisons of each variant against the no-SE baseline
on the per-case values), ``DIR/ablation.md`` (+ ``.html``) rendered from it, ``DIR/ablation.csv`` (one row per
variant, test fold and seed) and ``DIR/ablation.png``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scse_monai.apps.chaos.labels import ORGANS
from scse_monai.apps.design import check_ablation_design
from scse_monai.apps.experiment import (
    case_groups,
    compare_to_baseline,
    evaluate_run,
    prepare_run_dir,
    read_case_metrics,
    summarise_seeds,
    train_run,
    variant_overrides,
)
from scse_monai.apps.report import comparison_table, fmt, markdown_table, write_report
from scse_monai.apps.stats import mean_sd
from scse_monai.metrics.tables import results_to_json
from scse_monai.utils.io import atomic_write_text
from scse_monai.utils.output_dir import claim_output_dir

__all__ = ["DEFAULT_VARIANTS", "BASELINE", "run_ablation", "ablation_rows", "ablation_markdown", "add_arguments",
           "run"]

#: the paper's Table III columns.
DEFAULT_VARIANTS = ("none", "cse", "sse", "scse")
#: the variant every other one is compared with.
BASELINE = "none"

_COLUMNS = [*ORGANS.values(), "mean"]


def ablation_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per variant, test fold and seed: ``variant, test_fold, seed, dice_<organ>..., dice_mean, score``.

    Args:
        results: the ablation's ``results.json`` content.
    """
    rows = []
    for variant, net in results["networks"].items():
        for run in net["runs"]:
            mean = run["mean"]
            row: dict[str, Any] = {"variant": variant, "test_fold": run["test_fold"], "seed": run["seed"]}
            for organ in _COLUMNS:
                row[f"dice_{organ.replace(' ', '_')}"] = mean.get(organ, {}).get("dice")
            row["score"] = mean.get("mean", {}).get("score")
            rows.append(row)
    return rows


def _summary(rows: Sequence[Mapping[str, Any]], variants: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """(mean, sd) over test folds and seeds per column and variant."""
    out: dict[str, list[tuple[float, float]]] = {}
    for organ in _COLUMNS:
        key = f"dice_{organ.replace(' ', '_')}"
        out[organ] = [mean_sd([r[key] for r in rows if r["variant"] == v]) for v in variants]
    out["score"] = [mean_sd([r["score"] for r in rows if r["variant"] == v]) for v in variants]
    return out


def ablation_markdown(results: Mapping[str, Any]) -> str:
    """The markdown of ``ablation.md``, rendered from ``results.json`` alone."""
    nets = results["networks"]
    variants = list(nets)
    base = nets[results["baseline"]]["parameters"]
    summary = results["summary"]
    table = []
    for i, v in enumerate(variants):
        cells = [v, f"{nets[v]['parameters']:,}", f"{100.0 * (nets[v]['parameters'] - base) / base:+.2f} %",
                 str(len(nets[v]["runs"]))]
        cells += [f"{fmt(summary[o][i][0])} ± {fmt(summary[o][i][1])}" for o in _COLUMNS]
        cells.append(f"{fmt(summary['score'][i][0], '{:.1f}')} ± {fmt(summary['score'][i][1], '{:.1f}')}")
        table.append(cells)
    header = ["variant", "parameters", "overhead", "runs", *(f"Dice {o}" for o in _COLUMNS[:-1]), "mean Dice",
              "CHAOS score"]
    splits = [f"test fold {s['test_fold']} (validation fold {s['validation_fold']}, training folds "
              f"{s['training_folds']}: {len(s['training_cases'])} / {len(s['validation_cases'])} / "
              f"{len(s['test_cases'])} cases)" for s in results["splits"]]
    untestable = [c for c in results["comparison"] if c["p_value"] is None]
    parts = [
        "# scSE ablation (cf. Roy et al., TMI 2019, Tables II and III)",
        "",
        f"Data: `{results['dataset_dir']}`. Nested cross-validation by patient: " + "; ".join(splits) + ". The "
        "validation fold only selects `models/model.pt` (best validation Dice); the numbers below are from the test "
        f"folds. Seeds {results['seeds']}; bundle files `{'`, `'.join(results['configs'])}`, overrides "
        f"`{json.dumps(results['overrides'])}`.",
        "",
        "Mean ± sd over test folds and seeds of each run's mean over its test cases (an organ absent from every test "
        "case of a fold, e.g. kidneys/spleen in a CT-only fold, leaves that run out of that column):",
        "",
        markdown_table(header, table),
        "",
        f"## Paired comparison with `{results['baseline']}` on the {len(results['test_cases'])} test cases",
        "",
        "Per-case difference (variant - baseline; each case averaged over seeds), per organ and overall: mean with a "
        "percentile-bootstrap 95 % CI and the two-sided Wilcoxon signed-rank p-value.",
        "",
    ]
    for v in variants:
        rows = [c for c in results["comparison"] if c["variant"] == v]
        if rows:
            parts += [f"### {v}", "", comparison_table(rows), ""]
    if untestable:
        parts += [f"No p-value where marked n/a: {untestable[0]['reason']}.", ""]
    parts += [
        "Variants: none = MONAI UNet; cse = channel SE (r = 2); sse = spatial SE; scse = both, max-out (the TMI "
        "default); scse_add / scse_mul / scse_concat = the other aggregations of Table II.",
        "",
        "![Dice per organ](ablation.png)",
        "",
        "Per run: `ablation.csv`; everything: `results.json`; runs: `runs/<variant>/test<k>/seed<s>/`.",
        "",
    ]
    return "\n".join(parts)


def _rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["variant", "test_fold", "seed"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def run_ablation(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    folds: Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    configs: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train and evaluate every variant on every test fold and seed through the bundle; returns ``ablation.md``.

    Args:
        dataset_dir: converted data set (folder of ``datalist.json``, three or more folds).
        out_dir: output folder.
        variants: names in :data:`scse_monai.apps.experiment.SE_VARIANTS`; ``"none"``, if present, is the baseline
            of the paired comparisons (else the first variant).
        folds: test folds, each in turn; defaults to every fold of the datalist.
        seeds: training seeds.
        configs: bundle override files merged onto ``train.json`` (names in ``bundle/configs`` or paths).
        overrides: bundle overrides shared by all runs (``epochs``, ``pixdim``, ``network_def#channels``, ...);
            ``modalities`` is honoured in the case groups of ``results.json`` when given here (not in a file).
        progress: show progress bars.

    The design is checked first (:func:`scse_monai.apps.design.check_ablation_design`: folds by patient, no
    duplicate fold, variant or seed, seeds in range, override keys that the bundle has). ``out_dir`` must be new,
    empty, or an earlier ablation's folder of the same data set, files and overrides (finished runs are reused):
    :func:`~scse_monai.utils.output_dir.claim_output_dir`.

    Raises:
        InvalidInputError: for a design that fails the checks, fewer than three folds, a missing data set, or an
            unusable output folder.
    """
    from tqdm.auto import tqdm

    from scse_monai.apps.figures import plot_ablation
    from scse_monai.data import next_fold
    from scse_monai.networks import count_parameters, count_se_parameters

    dataset_dir = Path(dataset_dir).resolve()
    datalist = dataset_dir / "datalist.json"
    overrides = dict(overrides or {})
    configs = [str(c) for c in configs]
    available, test_folds = check_ablation_design(datalist, variants, folds, seeds, configs, overrides)
    inputs = {"DATA_DIR": dataset_dir, **{f"--config {c}": c for c in configs if Path(c).is_file()}}
    out = claim_output_dir(out_dir, "ablate", {"dataset_dir": str(dataset_dir), "configs": configs,
                                               "overrides": overrides}, inputs)
    baseline = BASELINE if BASELINE in variants else variants[0]
    splits = []
    for t in test_folds:
        v = next_fold(datalist, t)
        groups = case_groups(datalist, v, t, overrides.get("modalities"))
        training_folds = [f for f in available if f not in (v, t)]
        splits.append({"test_fold": t, "validation_fold": v, "training_folds": training_folds,
                       **{f"{k}_cases": c for k, c in groups.items()}})
    networks: dict[str, dict[str, Any]] = {v: {**variant_overrides(v), "runs": []} for v in variants}
    per_seed: dict[str, dict[int, dict[str, Any]]] = {v: {s: {} for s in seeds} for v in variants}
    jobs = [(v, split, s) for v in variants for split in splits for s in seeds]
    bar = tqdm(jobs, desc="ablate", unit="run", disable=not progress)
    try:
        for variant, split, seed in jobs:
            t = split["test_fold"]
            bar.set_postfix_str(f"{variant} test fold {t} seed {seed}")
            run_overrides = {**overrides, "seed": seed, "fold": split["validation_fold"], "test_fold": t,
                             **variant_overrides(variant)}
            run_dir = out / "runs" / variant / f"test{t}" / f"seed{seed}"
            prepare_run_dir(run_dir, json.dumps({"dataset_dir": str(dataset_dir), "configs": configs,
                                                 "overrides": run_overrides}, sort_keys=True))
            complete = run_dir / "complete"
            if not complete.is_file() or "parameters" not in networks[variant]:
                if not complete.is_file():
                    train_run(run_dir, dataset_dir, configs, run_overrides, progress=progress)
                workflow = evaluate_run(run_dir, dataset_dir, configs, run_overrides, progress=progress)
                atomic_write_text(complete, "")
                net = workflow.evaluator.network
                networks[variant].update(parameters=count_parameters(net), se_parameters=count_se_parameters(net))
            cases = read_case_metrics(run_dir)
            per_seed[variant][seed].update(cases)
            networks[variant]["runs"].append({"test_fold": t, "seed": seed,
                                              "mean": summarise_seeds({seed: cases})["mean"]})
            bar.update()
    finally:
        bar.close()
    for variant in variants:
        networks[variant].update(summarise_seeds(per_seed[variant]))
    results: dict[str, Any] = {
        "kind": "ablation",
        "dataset_dir": str(dataset_dir),
        "splits": splits,
        "test_cases": sorted(c for s in splits for c in s["test_cases"]),
        "seeds": list(seeds),
        "configs": ["train.json", *(Path(c).name if Path(c).suffix else f"{c}.json" for c in configs),
                    "evaluate.json"],
        "overrides": overrides,
        "baseline": baseline,
        "networks": networks,
        "comparison": compare_to_baseline(networks, baseline),
    }
    rows = ablation_rows(results)
    results["summary"] = _summary(rows, variants)
    atomic_write_text(out / "results.json", results_to_json(results))
    results = json.loads((out / "results.json").read_text())
    atomic_write_text(out / "ablation.csv", _rows_csv(rows))
    plot_ablation(list(variants), {o: results["summary"][o] for o in _COLUMNS}, out / "ablation.png")
    return write_report(out, ablation_markdown(results), name="ablation", title="scSE ablation")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=JSON, e.g. lr_step_size=10")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai ablate``."""
    parser.add_argument("data_dir", type=Path, help="converted data set (folder of datalist.json, 3 or more folds)")
    parser.add_argument("--out", type=Path, default=Path("ablation_output"), help="output folder")
    parser.add_argument("--folds", type=int, nargs="+", help="test folds, each in turn (default: all)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="VARIANT",
                        help="SE kinds (none cse sse scse scse_add scse_mul scse_concat) or the paper's placements "
                             "(placement_encoder, placement_decoder, placement_bottleneck, placement_encoder_decoder, "
                             "placement_all, ...; TMI Table IV) (default: none cse sse scse)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="bundle override file merged onto train.json, a name in bundle/configs or a path, e.g. "
                             "--config demo_quick (repeatable)")
    parser.add_argument("--epochs", type=int, help="training epochs per run (default: the bundle's)")
    parser.add_argument("--pixdim", type=float, nargs=2, help="in-plane resampling in mm (default: the bundle's)")
    parser.add_argument("--roi-size", type=int, nargs=2, help="training patch size (multiples of 16)")
    parser.add_argument("--channels", type=int, nargs="+", help="UNet channels per level")
    parser.add_argument("--strides", type=int, nargs="+", help="UNet strides (one fewer than channels)")
    parser.add_argument("--num-res-units", type=int, help="residual units per UNet block")
    parser.add_argument("--batch-size", type=int, help="volumes per training batch")
    parser.add_argument("--num-samples", type=int, help="slices sampled per volume")
    parser.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=JSON",
                        help="any other bundle override, e.g. --set num_workers=0 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai ablate``; prints ``report: <path>`` last."""
    overrides: dict[str, Any] = {}
    for attr, key in (("epochs", "epochs"), ("pixdim", "pixdim"), ("roi_size", "roi_size"),
                      ("channels", "network_def#channels"), ("strides", "network_def#strides"),
                      ("num_res_units", "network_def#num_res_units"), ("batch_size", "batch_size"),
                      ("num_samples", "num_samples")):
        value = getattr(args, attr)
        if value is not None:
            overrides[key] = value
    overrides.update(dict(args.set))
    path = run_ablation(args.data_dir, args.out, args.variants, args.folds, args.seeds, args.config, overrides,
                        progress=not args.quiet)
    print(f"report: {path}")
    return 0
