"""The text of the demo's ``report.md``, rendered from its ``results.json`` alone (see :mod:`scse_monai.apps.demo`).

Separate from the runner so that the report can be rebuilt, and the README's results table checked, from a saved
``results.json`` without torch, MONAI or a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scse_monai.apps.report import comparison_table, fmt, markdown_table, organ_tables, parameter_table

__all__ = ["FIGURES", "summary_markdown", "build_demo_report"]

#: figures written by the demo (file names in the output folder).
FIGURES = {
    "curves": "curves.png",
    "paired": "paired_dice.png",
    "examples": "examples.png",
    "spatial": "sse_attention.png",
    "cse_organ": "cse_by_organ.png",
    "cse_modality": "cse_by_modality.png",
}


def summary_markdown(results: Mapping[str, Any]) -> str:
    """The headline of a demo's ``results.json``: mean over organs per network, and the paired differences.

    Used at the top of the report and for the README's results table.
    """
    from scse_monai.apps.stats import MIN_TEST_CASES, mean_sd

    nets, seeds = results["networks"], results["seeds"]
    rows = []
    for name, net in nets.items():
        cells = [name, f"{net['parameters']:,}"]
        for key, spec in (("dice", "{:.3f}"), ("score", "{:.1f}")):
            _, sd = mean_sd([net["per_seed"][str(s)]["mean"].get("mean", {}).get(key) for s in seeds])
            mean = net["mean"].get("mean", {}).get(key)
            cells.append(f"{fmt(mean, spec)} (sd {fmt(sd, spec)})" if len(seeds) > 1 else fmt(mean, spec))
        rows.append(cells)
    spread = " (sd over seeds of the per-seed means)" if len(seeds) > 1 else ""
    table = markdown_table(["network", "parameters", f"mean Dice{spread}", f"CHAOS score{spread}"], rows)
    lines = [table, ""]
    for c in results["comparison"]:
        if c["organ"] != "overall":
            continue
        spec = "{:+.1f}" if c["metric"] == "score" else "{:+.3f}"
        ci = c["ci95"]
        ci_text = f"95 % CI [{fmt(ci[0], spec)}, {fmt(ci[1], spec)}]" if ci else "no CI"
        why = "too few cases" if c["n_cases"] < MIN_TEST_CASES else "all differences zero"
        p_text = f"Wilcoxon p = {c['p_value']:.3g}" if c["p_value"] is not None else f"no p-value ({why})"
        metric = "CHAOS score" if c["metric"] == "score" else "Dice"
        lines.append(f"- {c['variant']} - {c['baseline']}, {metric} (mean over organs) per test case: "
                     f"{fmt(c['mean_difference'], spec)}, {ci_text}, {p_text}, n = {c['n_cases']} cases.")
    return "\n".join(lines)


def _excitation_section(excitation: Mapping[str, Any]) -> str:
    if not excitation or not excitation.get("organ"):
        return "No cSE gates were recorded."
    rows = []
    for layer in excitation["organ"]:
        o, m = excitation["organ"][layer], excitation["modality"][layer]
        rows.append([layer, fmt(o["between"], "{:.4f}"), fmt(o["ratio"], "{:.2f}"), fmt(m["between"], "{:.4f}"),
                     fmt(m["ratio"], "{:.2f}")])
    counts = next((s["counts"] for s in excitation["organ"].values() if s["counts"]), {})
    text = [
        f"Channel-gate spread per layer of {excitation['network']} (seed {excitation['seed']}, forward order) over "
        f"the test slices. *between*: mean over channels of the standard deviation of the group means; *ratio*: "
        "between / pooled within-group standard deviation.",
        "",
        markdown_table(["layer", "organ: between", "organ: ratio", "modality: between", "modality: ratio"], rows),
    ]
    if counts:
        text += ["", "Organ groups (MR slices by their largest organ): "
                 + ", ".join(f"{g} {n} slices" for g, n in counts.items()) + "."]
    return "\n".join(text)


def build_demo_report(results: Mapping[str, Any]) -> str:
    """The markdown of ``report.md``, rendered from ``results.json`` alone (figures by the names in FIGURES)."""
    data, groups, cfg = results["data"], results["folds"], results["config"]
    names = list(results["networks"])
    nets = results["networks"]
    seeds = results["seeds"]
    comparisons = results["comparison"]
    untestable = [c for c in comparisons if c["p_value"] is None]
    load = results["machine"]["load_average"]
    lines = [
        "# scSE demo: MONAI UNet vs SEUNet on the CHAOS phantom",
        "",
        "## Protocol",
        "",
        f"Synthetic CHAOS-format data ({data['n_ct']} CT + {data['n_mr']} MR patients, data seed "
        f"{data['data_seed']}), converted with `scse-monai convert` into {data['folds']} patient-level folds (all "
        "sequences of a patient in one fold), giving three disjoint groups:",
        "",
        f"- training (folds {groups['training']}): {len(results['training_cases'])} cases;",
        f"- validation (fold {groups['validation']}, model selection only: `models/model.pt` is the epoch with the "
        f"best validation Dice): {', '.join(results['validation_cases'])};",
        f"- test (fold {groups['test']}, the only numbers reported): {', '.join(results['test_cases'])}.",
        "",
        f"Both networks were trained through the bundle (`{'`, `'.join(results['configs'])}`) with seeds "
        f"{seeds}: {cfg.get('epochs')} epochs, pixdim {cfg.get('pixdim')}, roi {cfg.get('roi_size')}, batch "
        f"{cfg.get('batch_size')} x {cfg.get('num_samples')} slices, channels {cfg.get('network_def#channels')}, "
        f"num_res_units {cfg.get('network_def#num_res_units')}; only `network_def#se` differs (UNet: null, "
        "SEUNet: scSE, max-out, r = 2). Total run time "
        f"{results['time_s'] / 60:.1f} min on {results['machine']['cpus']} CPUs (load average "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end).",
        "",
        "## Result",
        "",
        summary_markdown(results),
        "",
        f"## CHAOS metrics on the test fold (mean over {len(results['test_cases'])} cases and {len(seeds)} seed(s))",
        "",
        "Each case's metrics are averaged over the seeds, then over the cases. The CHAOS CT Ground marks the liver "
        "only, so kidneys and spleen are scored on the MR cases.",
        "",
        organ_tables({n: nets[n]["mean"] for n in names}),
        "",
        "Mean over organs, per seed (mean over the test cases):",
        "",
        markdown_table(["network", *(f"seed {s}: Dice" for s in seeds), *(f"seed {s}: score" for s in seeds)],
                       [[n, *(fmt(nets[n]["per_seed"][str(s)]["mean"].get("mean", {}).get("dice")) for s in seeds),
                         *(fmt(nets[n]["per_seed"][str(s)]["mean"].get("mean", {}).get("score"), "{:.1f}")
                           for s in seeds)] for n in names]),
        "",
        f"## Paired comparison: {names[-1]} - {results['baseline']} per test case",
        "",
        "Difference of the per-case values (averaged over seeds), per organ and overall (each case's mean over its "
        "organs): mean with a percentile-bootstrap 95 % CI, and the two-sided Wilcoxon signed-rank p-value.",
        "",
        comparison_table(comparisons),
        "",
        *([f"No p-value where marked n/a: {untestable[0]['reason']}.", ""] if untestable else []),
        f"![per-case Dice of both networks]({FIGURES['paired']})",
        "",
        "## Size and speed",
        "",
        parameter_table({n: (nets[n]["parameters"], nets[n]["se_parameters"]) for n in names},
                        {n: nets[n]["seconds_per_epoch"] for n in names}, baseline=results["baseline"]),
        "",
        "Seconds per epoch: median over epochs and seeds of training plus validation (history.json), on this "
        "machine's CPU (timings depend on its load).",
        "",
        "## Training curves",
        "",
        f"![training loss and validation Dice]({FIGURES['curves']})",
        "",
        "## Example test slices",
        "",
        f"Test slices with the largest area of an organ: image, ground truth and the predictions of seed {seeds[0]} "
        "as the bundle's evaluator made them (preprocessed grid).",
        "",
        f"![examples]({FIGURES['examples']})",
        "",
        "## sSE spatial attention",
        "",
        "The spatial gate sigmoid(q) of a few SEUNet layers over the same slices as the network saw them (bright: "
        "kept, dark: suppressed; cf. Roy et al., TMI 2019, Fig. 7).",
        "",
        f"![sSE attention maps]({FIGURES['spatial']})",
        "",
        "## cSE channel excitations",
        "",
        "Mean channel gate per layer for groups of test slices, as in SENet's Fig. 6 (Hu et al., §7.2): MR slices "
        "grouped by their largest organ (CT slices are left out there, their Ground has only the liver) and all "
        "slices grouped by modality; the dashed line is the mean over all grouped slices.",
        "",
        f"![cSE gates by organ]({FIGURES['cse_organ']})",
        "",
        f"![cSE gates by modality]({FIGURES['cse_modality']})",
        "",
        _excitation_section(results.get("excitation", {})),
        "",
        "## Files",
        "",
        "- `results.json`: everything above (case groups, per-case metrics per seed, comparisons).",
        "- `runs/<network>/seed<k>/`: bundle roots (`models/model.pt`, `eval/history.json`, "
        "`eval/chaos_metrics.json`).",
        "- `data/`: the converted phantom (`datalist.json`); `phantom/`: the CHAOS-format phantom.",
        "",
    ]
    return "\n".join(lines)
