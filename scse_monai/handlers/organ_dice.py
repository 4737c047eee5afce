"""Per-organ Dice handlers for an evaluator, one per organ of the CHAOS label space (generated, not listed by hand)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from monai.handlers import MeanDice

from scse_monai.data.labels import ORGANS

__all__ = ["channel_output_transform", "organ_dice_metrics"]


def channel_output_transform(
    channel: int, pred_key: str = "pred", label_key: str = "label"
) -> Callable[[Sequence[dict]], tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """An ``output_transform`` giving one class channel of one-hot ``pred`` and ``label``, for a per-organ Dice.

    Use with ``MeanDice(output_transform=channel_output_transform(1))`` after ``AsDiscreted(to_onehot=...)``; cases
    in which the organ is absent from the label are ignored by MeanDice's ``ignore_empty``.
    """

    def _transform(output: Sequence[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        preds = [item[pred_key][channel : channel + 1] for item in output]
        labels = [item[label_key][channel : channel + 1] for item in output]
        return preds, labels

    return _transform


def organ_dice_metrics(
    pred_key: str = "pred", label_key: str = "label", prefix: str = "val_dice_", organs: Mapping[int, str] | None = None
) -> dict[str, MeanDice]:
    """``{f"{prefix}{organ}": MeanDice}`` for every organ (spaces in names become ``_``), for ``additional_metrics``.

    In a bundle config: ``"additional_metrics": "$scse_monai.handlers.organ_dice_metrics()"`` gives
    ``val_dice_liver``, ``val_dice_right_kidney``, ``val_dice_left_kidney`` and ``val_dice_spleen``.

    Args:
        pred_key: key of the one-hot prediction in each decollated output item.
        label_key: key of the one-hot reference.
        prefix: metric name prefix.
        organs: label value -> organ name; defaults to the package's label space
            (:data:`scse_monai.data.labels.ORGANS`).
    """
    organs = ORGANS if organs is None else organs
    return {
        f"{prefix}{name.replace(' ', '_')}": MeanDice(
            output_transform=channel_output_transform(value, pred_key=pred_key, label_key=label_key)
        )
        for value, name in organs.items()
    }
