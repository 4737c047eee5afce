"""What the bundle's evaluator saw and predicted, and the SE gates it computed, for the demo's figures.

:class:`EvaluationCapture` is an ignite handler attached to the bundle's own evaluator (``evaluate.json``), so the
figures show the predictions that produced the report's tables: the preprocessed image, label and prediction of every
test case, and, through :class:`scse_monai.networks.ExcitationRecorder`, the cSE and sSE gates of every slice the
inferer (MONAI's ``SliceInferer``) passed through the network.

The channel analysis follows SENet's "role of excitation" (Hu et al., arXiv 1709.01507, §7.2, Fig. 6: mean channel
gates per class and layer); the spatial maps are Roy et al.'s sSE attention (TMI 2019, §IV-I, Fig. 7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scse_monai.apps.chaos.labels import NUM_CLASSES, ORGANS
from scse_monai.errors import InvalidInputError

__all__ = ["EvaluationCapture", "se_layer_labels", "excitation_spread", "pick_examples", "channel_analysis"]


class EvaluationCapture:
    """Keep every evaluated case (preprocessed grid) and the SE gates of every slice; attach to the evaluator.

    Needs the bundle's evaluator layout: batch size 1 and a ``SliceInferer`` whose ``roi_size`` covers a whole slice
    (one network window per slice, so gates map to slices).

    Attributes:
        volumes: per case ``{"case", "modality", "image" (X, Y, Z), "label" (X, Y, Z), "pred" (X, Y, Z), "windows"
            (Z, H, W) network inputs, "channel": {layer: (Z, C)}, "spatial": {layer: (Z, h, w)}}``.
        layers: ``{layer name: label}`` of the network's SE layers (:func:`se_layer_labels`).
    """

    def __init__(self) -> None:
        self.volumes: list[dict[str, Any]] = []
        self.layers: dict[str, str] = {}
        self._recorder: Any = None
        self._handle: Any = None
        self._windows: list[Any] = []
        self._gates: dict[str, dict[str, list[Any]]] = {"channel": {}, "spatial": {}}

    def attach(self, engine: Any) -> None:
        """Hook the engine's network and collect at every ``FORWARD_COMPLETED``; unhook at ``COMPLETED``."""
        from ignite.engine import Events
        from monai.engines.utils import IterationEvents

        from scse_monai.networks.excitation import ExcitationRecorder

        self.layers = se_layer_labels(engine.network)
        self._recorder = ExcitationRecorder(engine.network).__enter__()
        self._handle = engine.network.register_forward_hook(self._after_forward)
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.close())

    def close(self) -> None:
        """Remove the hooks (idempotent; also call it when the evaluation failed)."""
        if self._recorder is not None:
            self._recorder.remove()
        if self._handle is not None:
            self._handle.remove()
        self._recorder = self._handle = None

    def _after_forward(self, _module: Any, inputs: Any, _output: Any) -> None:
        import torch

        self._windows.append(inputs[0].detach()[:, 0].to("cpu", torch.float16))
        for name, record in self._recorder.records.items():
            for kind in ("channel", "spatial"):
                value = getattr(record, kind)
                if value is not None:
                    value = value if kind == "channel" else value[:, 0].to(torch.float16)
                    self._gates[kind].setdefault(name, []).append(value)
        self._recorder.clear()

    def _collect(self, engine: Any) -> None:
        import torch

        from scse_monai.metrics.chaos_metric import case_name

        out, batch = engine.state.output, engine.state.batch
        image, label, pred = out["image"], out["label"], out["pred"]
        if image.shape[0] != 1:
            raise InvalidInputError(f"evaluation batch of {image.shape[0]} volumes; the capture needs batch size 1")
        # [0]: the item's metadata (the batch's holds a list of file names)
        case = case_name(image[0].meta.get("filename_or_obj")) or f"case{len(self.volumes)}"
        windows = torch.cat(self._windows) if self._windows else torch.empty(0)
        if len(windows) != image.shape[-1]:
            raise InvalidInputError(
                f"the inferer ran {len(windows)} network windows over the {image.shape[-1]} slices of {case}; the "
                "excitation analysis needs one window per slice: set roi_size to at least the slice size "
                f"{list(image.shape[2:4])}")
        modality = batch.get("modality", ["auto"]) if isinstance(batch, Mapping) else ["auto"]
        self.volumes.append({
            "case": case,
            "modality": str(modality[0]),
            "image": image[0, 0].detach().cpu().float().numpy(),
            "label": label[0, 0].detach().cpu().numpy().astype(np.uint8),
            "pred": pred[0].detach().argmax(0).cpu().numpy().astype(np.uint8),
            "windows": windows.float().numpy(),
            "channel": {n: torch.cat(v).float().numpy() for n, v in self._gates["channel"].items()},
            "spatial": {n: torch.cat(v).float().numpy() for n, v in self._gates["spatial"].items()},
        })
        self._windows = []
        self._gates = {"channel": {}, "spatial": {}}


def se_layer_labels(net: Any) -> dict[str, str]:
    """Readable labels of a network's SE layers, in forward order: ``enc1 (16 ch)``, ..., ``bottleneck``, ``dec``.

    For :class:`~scse_monai.networks.nets.SEUNet` the registration order is encoders, bottleneck, decoders (deepest
    first); other networks get ``SE1``, ``SE2``, ... with the channel count where known.
    """
    from scse_monai.networks import iter_se_layers

    layers = list(iter_se_layers(net))
    channels = getattr(net, "channels", None)
    labels: dict[str, str] = {}
    if channels is not None and hasattr(net, "se_bottleneck"):
        n_down = len(channels) - 1
        names = [f"enc{i + 1} ({channels[i]} ch)" for i in range(n_down)]
        if net.se_bottleneck:
            names.append(f"bottleneck ({channels[-1]} ch)")
        # up layer i (i = n_down - 1 ... 1) outputs channels[i - 1]; the top up layer (logits) has no SE
        names += [f"dec{i} ({channels[i - 1]} ch)" for i in range(n_down - 1, 0, -1)]
        if len(names) == len(layers):
            return {name: label for (name, _), label in zip(layers, names, strict=True)}
    for i, (name, layer) in enumerate(layers):
        fc = getattr(getattr(layer, "cse", layer), "fc", None)
        c = getattr(fc[-2], "out_features", None) if fc is not None else None
        labels[name] = f"SE{i + 1}" + (f" ({c} ch)" if c else "")
    return labels


def excitation_spread(per_slice: Sequence[np.ndarray], groups: Sequence[str | None]) -> dict[str, Any]:
    """How much the mean channel gates of one layer differ between groups of slices.

    Args:
        per_slice: cSE gate vector (C,) per slice.
        groups: group of each slice (``None``: not used).

    Returns:
        ``{"means": {group: (C,) mean gate}, "counts": {group: n}, "between": mean over channels of the standard
        deviation of the group means, "within": mean over channels of the pooled within-group standard deviation,
        "ratio": between / within}``. Groups with fewer than 2 slices are left out; NaN values when fewer than 2
        groups remain.
    """
    by_group: dict[str, list[np.ndarray]] = {}
    for gate, group in zip(per_slice, groups, strict=True):
        if group is not None:
            by_group.setdefault(group, []).append(np.asarray(gate, dtype=np.float64))
    by_group = {g: v for g, v in sorted(by_group.items()) if len(v) >= 2}
    means = {g: np.mean(v, axis=0) for g, v in by_group.items()}
    out: dict[str, Any] = {"means": means, "counts": {g: len(v) for g, v in by_group.items()}}
    if len(means) < 2:
        out.update(between=float("nan"), within=float("nan"), ratio=float("nan"))
        return out
    between = float(np.std(np.stack(list(means.values())), axis=0).mean())
    resid = np.concatenate([np.asarray(v) - means[g] for g, v in by_group.items()])
    within = float(np.sqrt((resid**2).sum(axis=0) / max(1, len(resid) - len(means))).mean())
    out.update(between=between, within=within, ratio=between / within if within > 0 else float("nan"))
    return out


def _slices(volume: Mapping[str, Any], key: str) -> np.ndarray:
    """(X, Y, Z) -> (Z, X, Y)."""
    return np.moveaxis(volume[key], -1, 0)


def _dominant_organ(label_slice: np.ndarray, min_pixels: int) -> str | None:
    counts = np.bincount(label_slice.ravel().astype(np.int64), minlength=NUM_CLASSES)[1:]
    if counts.max() < min_pixels:
        return None
    return ORGANS[int(counts.argmax()) + 1]


def pick_examples(volumes: Sequence[Mapping[str, Any]], count: int = 3, min_pixels: int = 20) -> list[tuple[int, int]]:
    """``(volume index, slice index)`` of the slices with the largest area of an organ, from different cases first.

    Depends on the labels only, so every network's capture of the same test cases gives the same examples.
    """
    examples: list[tuple[int, int]] = []
    used: set[str] = set()
    for value in ORGANS:
        best = None
        for vi, vol in enumerate(volumes):
            area = (_slices(vol, "label") == value).sum(axis=(1, 2))
            k = int(area.argmax())
            score = (vol["case"] not in used, int(area[k]))
            if area[k] >= min_pixels and (best is None or score > best[0]):
                best = (score, vi, k)
        if best is not None and len(examples) < count:
            used.add(volumes[best[1]]["case"])
            examples.append((best[1], best[2]))
    return examples


def channel_analysis(capture: EvaluationCapture, min_pixels: int = 20) -> dict[str, Any]:
    """Channel (cSE) gate spread per layer, slices grouped by modality and by organ (MR only: CT marks the liver).

    Returns:
        ``{"labels": {layer: label}, "organ": {label: spread}, "modality": {label: spread}}`` (see
        :func:`excitation_spread`); empty spreads for a network without cSE.
    """
    out: dict[str, Any] = {"labels": capture.layers, "organ": {}, "modality": {}}
    volumes = capture.volumes
    modality = [v["modality"] for v in volumes for _ in range(v["label"].shape[-1])]
    organ = [_dominant_organ(s, min_pixels) if v["modality"] != "ct" else None
             for v in volumes for s in _slices(v, "label")]
    for name, label in capture.layers.items():
        gates = [g for v in volumes for g in v["channel"].get(name, [])]
        if len(gates) == len(modality):
            out["organ"][label] = excitation_spread(gates, organ)
            out["modality"][label] = excitation_spread(gates, modality)
    return out
