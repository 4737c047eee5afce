"""Matplotlib figures of the demo and ablation reports, saved as PNG atomically.

Drawn with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, rendered by the Agg canvas that
``savefig`` picks for PNG): no pyplot state and no global backend switch, so importing this module leaves the
caller's matplotlib set-up alone and works without a display.

All images are 2D arrays in the bundle's RAS orientation, axes (x, y) = (left->right, posterior->anterior); they are
shown in the radiological convention (patient's right on the left, anterior at the top) via :func:`display_slice`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from scse_monai.apps.chaos.labels import ORGANS
from scse_monai.data.labels import ORGAN_RGB
from scse_monai.utils.io import atomic_path

__all__ = [
    "ORGAN_COLOURS",
    "display_slice",
    "save_figure",
    "plot_training_curves",
    "plot_examples",
    "plot_spatial_attention",
    "plot_channel_excitations",
    "plot_ablation",
    "plot_paired",
]

#: colours of labels 1..4 (liver, right kidney, left kidney, spleen).
ORGAN_COLOURS = ["#{:02x}{:02x}{:02x}".format(*ORGAN_RGB[label]) for label in ORGANS]
_LABEL_CMAP = ListedColormap(["#00000000", *ORGAN_COLOURS])


def display_slice(array: np.ndarray) -> np.ndarray:
    """(x, y) RAS slice -> (rows, cols) for ``imshow`` in the radiological convention."""
    return np.asarray(array).T[::-1, ::-1]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save ``fig`` as PNG atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")


def plot_training_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike) -> None:
    """Training loss and validation mean Dice per epoch of several runs (``{run name: history records}``)."""
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for name, hist in histories.items():
        epochs = [e["epoch"] for e in hist]
        axes[0].plot(epochs, [np.nan if e.get("loss") is None else e["loss"] for e in hist], marker=".", label=name)
        dice = [np.nan if e.get("val_mean_dice") is None else e["val_mean_dice"] for e in hist]
        axes[1].plot(epochs, dice, marker=".", label=name)
    axes[0].set(xlabel="epoch", ylabel="training loss (Dice + CE)", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="mean Dice (organs)", title="validation Dice (held-out patients)", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def _show_labels(ax: Any, labels: np.ndarray, alpha: float = 0.5) -> None:
    masked = np.ma.masked_equal(display_slice(labels).astype(int), 0)
    ax.imshow(masked, cmap=_LABEL_CMAP, vmin=0, vmax=len(ORGANS), alpha=alpha, interpolation="nearest")


def plot_examples(
    examples: Sequence[Mapping[str, Any]], predictions: Mapping[str, Sequence[np.ndarray]], path: str | os.PathLike
) -> None:
    """Example slices: image, ground truth and each network's prediction overlaid.

    Args:
        examples: ``{"image": (x, y), "label": (x, y), "title": str}`` per row.
        predictions: ``{network name: [label map (x, y) per example]}``.
        path: output PNG.
    """
    cols = 2 + len(predictions)
    fig = Figure(figsize=(2.6 * cols, 2.6 * len(examples)))
    axes = fig.subplots(len(examples), cols, squeeze=False)
    for r, ex in enumerate(examples):
        panels = [("image", None), ("ground truth", ex["label"])] + [(n, p[r]) for n, p in predictions.items()]
        for c, (title, labels) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(display_slice(ex["image"]), cmap="gray")
            if labels is not None:
                _show_labels(ax, labels)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
        axes[r, 0].set_ylabel(ex.get("title", ""), fontsize=8)
    handles = [Patch(color=c, label=n) for c, n in zip(ORGAN_COLOURS, ORGANS.values(), strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.subplots_adjust(bottom=0.08)
    save_figure(fig, path)


def plot_spatial_attention(
    examples: Sequence[Mapping[str, Any]], maps: Sequence[Mapping[str, np.ndarray]], path: str | os.PathLike
) -> None:
    """SSE spatial gates sigmoid(q) overlaid on the image, a few layers per example (Roy et al. TMI 2019, Fig. 7).

    Args:
        examples: ``{"image": (x, y), "title": str}`` per row.
        maps: per example ``{layer label: gate map (x', y') in [0, 1]}``; maps are upsampled to the image's size
            (nearest neighbour, so the layer's resolution stays visible).
        path: output PNG.
    """
    layers = list(maps[0]) if maps else []
    cols = 1 + len(layers)
    fig = Figure(figsize=(2.6 * cols, 2.6 * len(examples)))
    axes = fig.subplots(len(examples), cols, squeeze=False)
    im = None
    for r, (ex, row_maps) in enumerate(zip(examples, maps, strict=True)):
        image = np.asarray(ex["image"])
        axes[r, 0].imshow(display_slice(image), cmap="gray")
        axes[r, 0].set_ylabel(ex.get("title", ""), fontsize=8)
        for c, layer in enumerate(layers, start=1):
            gate = np.asarray(row_maps[layer])
            rep = (max(1, image.shape[0] // gate.shape[0]), max(1, image.shape[1] // gate.shape[1]))
            big = np.kron(gate, np.ones(rep))[: image.shape[0], : image.shape[1]]
            axes[r, c].imshow(display_slice(image), cmap="gray")
            im = axes[r, c].imshow(display_slice(big), cmap="magma", alpha=0.6, vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(layer, fontsize=9)
        axes[r, 0].set_title("image" if r == 0 else "")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="sSE gate sigmoid(q)")
    save_figure(fig, path)


def plot_channel_excitations(
    gates: Mapping[str, Mapping[str, np.ndarray]], path: str | os.PathLike, max_channels: int = 64
) -> None:
    """Mean cSE channel gates per group for every SE layer, one panel per layer (SENet §7.2, Fig. 6).

    Args:
        gates: ``{layer label: {group name: mean gate per channel (C,)}}``; a group named ``"all"`` is drawn as the
            dashed reference.
        path: output PNG.
        max_channels: at most this many channels per layer are shown, uniformly sampled (SENet shows 50).
    """
    layers = list(gates)
    cols = min(4, max(1, len(layers)))
    rows = max(1, -(-len(layers) // cols))
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, layer in zip(axes.ravel(), layers, strict=False):
        groups = gates[layer]
        n = len(next(iter(groups.values())))
        idx = np.unique(np.linspace(0, n - 1, min(n, max_channels)).round().astype(int))
        for group, values in groups.items():
            style = {"color": "k", "ls": "--", "lw": 1.0} if group == "all" else {"lw": 1.2}
            ax.plot(np.arange(len(idx)), np.asarray(values)[idx], label=group, **style)
        ax.set(title=layer, ylim=(0, 1), xlabel="channel (sampled)" if n > max_channels else "channel")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(layers):]:
        ax.axis("off")
    if layers:
        axes.ravel()[0].set_ylabel("mean cSE gate")
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.subplots_adjust(hspace=0.7)
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(6, len(labels)),
                   frameon=False)
    save_figure(fig, path)


def plot_ablation(
    variants: Sequence[str], columns: Mapping[str, Sequence[tuple[float, float]]], path: str | os.PathLike
) -> None:
    """Grouped bars (mean ± sd across folds) per variant for each column, e.g. ``{"liver": [(m, sd), ...]}``."""
    names = list(columns)
    width = 0.8 / max(1, len(variants))
    fig = Figure(figsize=(max(6.0, 1.4 * len(names) + 1), 3.8))
    ax = fig.subplots()
    x = np.arange(len(names))
    for i, variant in enumerate(variants):
        means = [columns[n][i][0] for n in names]
        sds = [columns[n][i][1] for n in names]
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, means, width, yerr=sds, capsize=2, label=variant)
    ax.set_xticks(x, names)
    ax.set(ylabel="Dice", ylim=(0, 1), title="ablation: Dice per organ, mean ± sd across folds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(4, len(variants)), fontsize=8)
    save_figure(fig, path)


def plot_paired(
    baseline: Mapping[str, Mapping[str, Mapping[str, float]]],
    variant: Mapping[str, Mapping[str, Mapping[str, float]]],
    baseline_name: str,
    variant_name: str,
    organs: Sequence[str],
    path: str | os.PathLike,
    metric: str = "dice",
) -> None:
    """Per-case values of two networks side by side, one line per case, a panel per organ and one for the mean.

    Args:
        baseline: per-case results ``{case: {organ | "mean": {metric: value}}}`` of the reference network.
        variant: the same for the other network.
        baseline_name: x label of the left column.
        variant_name: x label of the right column.
        organs: organ panels (``"mean"`` is added as ``overall``).
        path: output PNG.
        metric: which metric to plot.
    """
    panels = [o for o in [*organs, "mean"] if any(o in r for r in baseline.values())]
    fig = Figure(figsize=(2.4 * len(panels) + 0.6, 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, organ in zip(axes, panels, strict=True):
        cases = [c for c in baseline if organ in baseline[c] and organ in variant.get(c, {})]
        for c in cases:
            pair = [baseline[c][organ][metric], variant[c][organ][metric]]
            ax.plot([0, 1], pair, color="0.6", lw=0.8, marker="o", ms=3)
        if cases:
            means = [np.nanmean([r[c][organ][metric] for c in cases]) for r in (baseline, variant)]
            ax.plot([0, 1], means, color="k", lw=2, marker="s", label="mean")
        ax.set_xticks([0, 1], [baseline_name, variant_name])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(f"{'overall' if organ == 'mean' else organ} (n={len(cases)})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric} per test case")
    save_figure(fig, path)
