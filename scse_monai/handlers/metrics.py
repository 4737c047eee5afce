"""Helpers to feed MONAI metric handlers from decollated engine outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["channel_output_transform"]


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
