"""The label space of the package: background and the four abdominal organs of CHAOS, one definition for all.

:data:`LABELS` is the single definition (all modalities): 0 background, 1 liver, 2 right kidney, 3 left kidney,
4 spleen. Everything else derives from it: :data:`ORGANS`, :data:`NUM_CLASSES`, the CHAOS metrics, the per-organ
Dice handlers, the class weights, the converter's ``dataset.json``, the figures and the bundle configs (their
``num_classes``; ``metadata.json``'s ``channel_def``, which MONAI Label reads as data, is
checked against it by a test). The CHAOS file encodings of these labels (Ground PNG grey levels) are in
:mod:`scse_monai.apps.chaos.labels`.

Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation", Medical Image Analysis 69
(2021) 101950, https://arxiv.org/abs/2001.06535.
"""

from __future__ import annotations

__all__ = ["LABELS", "ORGANS", "NUM_CLASSES", "ORGAN_RGB"]

#: The label space: name -> label value, background first (MONAI Label's ``labels`` convention).
LABELS: dict[str, int] = {"background": 0, "liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
#: label value -> organ name, background excluded, in label order.
ORGANS: dict[int, str] = {value: name for name, value in sorted(LABELS.items(), key=lambda kv: kv[1]) if value}
#: number of classes including background (network output channels).
NUM_CLASSES: int = len(LABELS)
#: label value -> display colour (sRGB 0-255) of each organ: the figures' colours and the DICOM SEG's recommended
#: display colours.
ORGAN_RGB: dict[int, tuple[int, int, int]] = {1: (230, 25, 75), 2: (60, 180, 75), 3: (67, 99, 216), 4: (245, 130, 49)}
