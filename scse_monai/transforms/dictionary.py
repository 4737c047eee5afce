"""Dictionary wrappers of :mod:`scse_monai.transforms.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform

from scse_monai.transforms.array import CheckImage, ModalityNormalizeIntensity, check_source_file

__all__ = ["ModalityNormalizeIntensityd", "CheckImaged"]


class ModalityNormalizeIntensityd(MapTransform):
    """Dictionary version of :class:`~scse_monai.transforms.array.ModalityNormalizeIntensity`.

    The modality is read from ``data[modality_key]`` (the converter's datalist entries carry ``"modality"``); when
    the key is absent or ``"auto"`` it is inferred from the intensities, so a bare NIfTI or DICOM input works.

    Args:
        keys: keys of the images to normalise.
        modality_key: key holding the modality name. Defaults to ``"modality"``.
        ct_window: see the array transform.
        mr_percentiles: see the array transform.
        ct_threshold: see the array transform.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = ModalityNormalizeIntensity.backend

    def __init__(
        self,
        keys: KeysCollection,
        modality_key: str = "modality",
        ct_window: Sequence[float] = (-175.0, 250.0),
        mr_percentiles: Sequence[float] = (0.5, 99.5),
        ct_threshold: float = -500.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modality_key = modality_key
        self.normalizer = ModalityNormalizeIntensity(ct_window, mr_percentiles, ct_threshold)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Apply to the images under ``keys``."""
        d = dict(data)
        modality = d.get(self.modality_key)
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key], modality if isinstance(modality, str) else None)
        return d


class CheckImaged(MapTransform):
    """Dictionary version of :class:`~scse_monai.transforms.array.CheckImage`.

    Besides the images under ``keys`` (checked completely), the source file of every other loaded item of the
    sample (a label map, an evaluation reference) has its gzip stream verified, so a damaged ground truth is refused
    as a damaged image is, without listing it under ``keys``.
    """

    backend = CheckImage.backend

    def __init__(self, keys: KeysCollection, spatial_dims: int = 3, channels: int | None = 1, finite: bool = True,
                 pixdim: Sequence[float] | None = None, max_extent_mm: float = 5000.0, max_voxels: int = 2**30,
                 verify_source: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckImage(spatial_dims, channels, finite, pixdim, max_extent_mm, max_voxels, verify_source)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Apply to the images under ``keys``; verify the source files of the other loaded items."""
        d = dict(data)
        for key in self.key_iterator(d):
            self.checker(d[key])
        if self.checker.verify_source:
            for key, value in d.items():
                if key not in self.keys:
                    check_source_file(value)
        return d
