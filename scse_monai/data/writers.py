"""Crash-safe image writers for MONAI's :class:`~monai.transforms.SaveImage`."""

from __future__ import annotations

from monai.config import PathLike
from monai.data import NibabelWriter

from scse_monai.utils.io import atomic_path

__all__ = ["AtomicNibabelWriter"]


class AtomicNibabelWriter(NibabelWriter):
    """:class:`monai.data.NibabelWriter` that writes to a temporary file beside the target, then renames it.

    MONAI's writer saves straight under the final name, so an inference killed mid-write leaves a truncated
    ``.nii.gz`` that looks like a finished prediction. Here the final name only ever holds a complete file.
    Use it in a bundle with ``"writer": "scse_monai.data.AtomicNibabelWriter"`` in ``SaveImaged``.

    It also keeps singleton *spatial* dimensions: MONAI's default ``squeeze_end_dims`` drops every trailing size-1
    axis, so the prediction of a one-slice volume would be saved as 2D and no longer match its input's grid. Only a
    single channel is squeezed here.
    """

    def set_data_array(self, data_array, channel_dim: int | None = 0, squeeze_end_dims: bool = True, **kwargs) -> None:
        """Channel-last data as in MONAI, but ``squeeze_end_dims`` removes only a single channel."""
        spatial_ndim = kwargs.get("spatial_ndim", 3)
        if not spatial_ndim:  # spatial rank unknown: MONAI's behaviour
            super().set_data_array(data_array, channel_dim=channel_dim, squeeze_end_dims=squeeze_end_dims, **kwargs)
            return
        super().set_data_array(data_array, channel_dim=channel_dim, squeeze_end_dims=False, **kwargs)
        if squeeze_end_dims and self.data_obj.ndim > spatial_ndim and self.data_obj.shape[-1] == 1:
            self.data_obj = self.data_obj[..., 0]

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs) -> None:
        """Write ``self.data_obj`` to ``filename`` atomically (the temporary name keeps ``.nii``/``.nii.gz``)."""
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=verbose, **obj_kwargs)
