"""``scse-monai ablate``: none / cSE / sSE / scSE (and scSE's aggregations) with k-fold cross-validation.

The analogue of Roy et al.'s Table III (TMI 2019: Dice of each network without SE and with cSE, sSE, scSE) and Table
II (scSE aggregations) for whatever converted data set the user has, the real CHAOS set included::

    scse-monai ablate DATA_DIR --out DIR [--folds 0 1 2] [--variants none cse sse scse] [--epochs N] [--pixdim X Y] ...

``DATA_DIR`` is the output folder of ``scse-monai convert`` (``datalist.json`` with patient-level folds). Every
variant x fold is trained with the bundle's ``train.json`` (fold k held out) and evaluated with ``evaluate.json``
on fold k with the CHAOS metrics, each in its own ``DIR/runs/<variant>/fold<k>`` (a finished run with the same
settings is reused, an interrupted one resumes). Written: ``DIR/ablation.md`` (+ ``.html``): per variant the
parameters and mean ± sd across folds of the per-organ Dice, the mean Dice and the CHAOS score; ``DIR/ablation.csv``
(one row per variant and fold) and ``DIR/ablation.png`` (bar chart).
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

from scse_monai.apps.experiment import (
    SE_VARIANTS,
    build_network,
    evaluate_run,
    prepare_run_dir,
    train_run,
)
from scse_monai.apps.report import fmt, markdown_table, mean_sd, write_report
from scse_monai.errors import InvalidInputError
from scse_monai.metrics.chaos import ORGANS
from scse_monai.utils.io import atomic_write_text

__all__ = ["DEFAULT_VARIANTS", "run_ablation", "ablation_rows", "ablation_markdown", "add_arguments", "run"]

#: the paper's Table III columns.
DEFAULT_VARIANTS = ("none", "cse", "sse", "scse")

_COLUMNS = [*ORGANS.values(), "mean"]


def _dataset_folds(dataset_dir: Path) -> list[int]:
    path = dataset_dir / "datalist.json"
    if not path.is_file():
        raise InvalidInputError("no datalist.json; expected the output folder of `scse-monai convert`", dataset_dir)
    try:
        training = json.loads(path.read_text())["training"]
        return sorted({int(e["fold"]) for e in training})
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"malformed datalist ({e}); expected training entries with a 'fold'", path) from e


def ablation_rows(results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per variant and fold: ``variant, fold, dice_<organ>..., dice_mean, score``.

    Args:
        results: ``{variant: {fold: chaos_metrics.json}}``.
    """
    rows = []
    for variant, folds in results.items():
        for fold, metrics in folds.items():
            mean = metrics.get("mean", {})
            row: dict[str, Any] = {"variant": variant, "fold": fold}
            for organ in _COLUMNS:
                row[f"dice_{organ.replace(' ', '_')}"] = mean.get(organ, {}).get("dice")
            row["score"] = mean.get("mean", {}).get("score")
            rows.append(row)
    return rows


def ablation_markdown(
    rows: Sequence[Mapping[str, Any]], params: Mapping[str, tuple[int, int]], settings: Mapping[str, Any]
) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    """The markdown of ``ablation.md`` and the (mean, sd) per column and variant for the bar chart."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    base = params.get("none", next(iter(params.values())))[0]
    keys = [f"dice_{o.replace(' ', '_')}" for o in _COLUMNS]
    summary: dict[str, list[tuple[float, float]]] = {o: [] for o in _COLUMNS}
    table = []
    for v in variants:
        vr = [r for r in rows if r["variant"] == v]
        cells = [v, f"{params[v][0]:,}", f"{100.0 * (params[v][0] - base) / base:+.2f} %", str(len(vr))]
        for organ, key in zip(_COLUMNS, keys, strict=True):
            m, sd = mean_sd([r[key] for r in vr])
            summary[organ].append((m, sd))
            cells.append(f"{fmt(m)} ± {fmt(sd)}")
        m, sd = mean_sd([r["score"] for r in vr])
        cells.append(f"{fmt(m, '{:.1f}')} ± {fmt(sd, '{:.1f}')}")
        table.append(cells)
    header = ["variant", "parameters", "overhead", "folds", *(f"Dice {o}" for o in _COLUMNS[:-1]), "mean Dice",
              "CHAOS score"]
    text = "\n".join([
        "# scSE ablation (cf. Roy et al., TMI 2019, Tables II and III)",
        "",
        f"Data: `{settings['dataset_dir']}`; folds {settings['folds']} (each held out once: trained on the others, "
        f"evaluated on it with the CHAOS metrics); bundle overrides: `{json.dumps(settings['overrides'])}`. "
        "Values: mean ± sd across folds of each fold's mean over its cases (an organ absent from every case of a "
        "fold, e.g. kidneys/spleen in CT-only folds, leaves that fold out of that column).",
        "",
        markdown_table(header, table),
        "",
        "Variants: none = MONAI UNet; cse = channel SE (r = 2); sse = spatial SE; scse = both, max-out (the TMI "
        "default); scse_add / scse_mul / scse_concat = the other aggregations of Table II.",
        "",
        "![Dice per organ](ablation.png)",
        "",
        "Per fold: `ablation.csv`; runs: `runs/<variant>/fold<k>/`.",
        "",
    ])
    return text, summary


def _rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["variant", "fold"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def run_ablation(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    folds: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train and evaluate every variant on every fold through the bundle; returns the path of ``ablation.md``.

    Args:
        dataset_dir: converted data set (folder of ``datalist.json``).
        out_dir: output folder.
        variants: names in :data:`scse_monai.apps.experiment.SE_VARIANTS`.
        folds: folds to hold out in turn; defaults to every fold of the datalist.
        overrides: bundle overrides shared by all runs (``epochs``, ``pixdim``, ``network_def#channels``, ...).
        progress: show progress bars.

    Raises:
        InvalidInputError: for an unknown variant, a fold not in the datalist, or a missing data set.
    """
    from tqdm.auto import tqdm

    from scse_monai.apps.figures import plot_ablation
    from scse_monai.networks import count_parameters, count_se_parameters

    dataset_dir, out = Path(dataset_dir).resolve(), Path(out_dir)
    unknown = [v for v in variants if v not in SE_VARIANTS]
    if unknown or not variants:
        raise InvalidInputError(f"variants {unknown or list(variants)}; expected some of {list(SE_VARIANTS)}")
    available = _dataset_folds(dataset_dir)
    folds = list(available if folds is None else folds)
    if not folds or any(f not in available for f in folds):
        raise InvalidInputError(f"--folds {folds}; the datalist has folds {available}", dataset_dir)
    if len(available) < 2:
        raise InvalidInputError("the datalist has one fold; convert with --folds 2 or more", dataset_dir)
    overrides = dict(overrides or {})
    results: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in variants}
    params: dict[str, tuple[int, int]] = {}
    jobs = [(v, f) for v in variants for f in folds]
    bar = tqdm(jobs, desc="ablate", unit="run", disable=not progress)
    try:
        for variant, fold in jobs:
            bar.set_postfix_str(f"{variant} fold {fold}")
            run_overrides = {**overrides, "fold": fold, "network_def#se": SE_VARIANTS[variant]}
            run_dir = out / "runs" / variant / f"fold{fold}"
            settings_json = json.dumps({"dataset_dir": str(dataset_dir), "overrides": run_overrides}, sort_keys=True)
            prepare_run_dir(run_dir, settings_json)
            metrics_file = run_dir / "eval" / "chaos_metrics.json"
            if not (metrics_file.is_file() and (run_dir / "complete").is_file()):
                train_run(run_dir, dataset_dir, run_overrides)
                evaluate_run(run_dir, dataset_dir, run_overrides)
                atomic_write_text(run_dir / "complete", "")
            results[variant][fold] = json.loads(metrics_file.read_text())
            if variant not in params:
                net = build_network(run_overrides)
                params[variant] = (count_parameters(net), count_se_parameters(net))
            bar.update()
    finally:
        bar.close()
    rows = ablation_rows(results)
    settings = {"dataset_dir": str(dataset_dir), "folds": folds, "overrides": overrides}
    markdown, summary = ablation_markdown(rows, params, settings)
    atomic_write_text(out / "ablation.csv", _rows_csv(rows))
    plot_ablation(list(variants), summary, out / "ablation.png")
    return write_report(out, markdown, name="ablation", title="scSE ablation")


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
    parser.add_argument("data_dir", type=Path, help="converted data set (folder of datalist.json)")
    parser.add_argument("--out", type=Path, default=Path("ablation_output"), help="output folder")
    parser.add_argument("--folds", type=int, nargs="+", help="folds to hold out in turn (default: all)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(SE_VARIANTS),
                        help="SE variants (default: none cse sse scse)")
    parser.add_argument("--epochs", type=int, help="training epochs per run (default: the bundle's)")
    parser.add_argument("--pixdim", type=float, nargs=2, help="in-plane resampling in mm (default: the bundle's)")
    parser.add_argument("--roi-size", type=int, nargs=2, help="training patch size (multiples of 16)")
    parser.add_argument("--channels", type=int, nargs="+", help="UNet channels per level")
    parser.add_argument("--strides", type=int, nargs="+", help="UNet strides (one fewer than channels)")
    parser.add_argument("--num-res-units", type=int, help="residual units per UNet block")
    parser.add_argument("--batch-size", type=int, help="volumes per training batch")
    parser.add_argument("--num-samples", type=int, help="slices sampled per volume")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=JSON",
                        help="any other bundle override, e.g. --set num_workers=0 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``scse-monai ablate``; prints ``report: <path>`` last."""
    overrides: dict[str, Any] = {"seed": args.seed}
    for attr, key in (("epochs", "epochs"), ("pixdim", "pixdim"), ("roi_size", "roi_size"),
                      ("channels", "network_def#channels"), ("strides", "network_def#strides"),
                      ("num_res_units", "network_def#num_res_units"), ("batch_size", "batch_size"),
                      ("num_samples", "num_samples")):
        value = getattr(args, attr)
        if value is not None:
            overrides[key] = value
    overrides.update(dict(args.set))
    path = run_ablation(args.data_dir, args.out, args.variants, args.folds, overrides, progress=not args.quiet)
    print(f"report: {path}")
    return 0
