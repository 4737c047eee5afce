"""Crash-safe image writers for MONAI's :class:`~monai.transforms.SaveImage`: NIfTI and DICOM SEG."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike
from monai.data import ImageWriter, NibabelWriter

from scse_monai.utils.io import atomic_path

__all__ = ["AtomicNibabelWriter", "DicomSegWriter"]


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


class DicomSegWriter(ImageWriter):
    """MONAI ``ImageWriter`` for ``SaveImage``: a label map -> DICOM SEG of its source series (atomic).

    The source series is the folder in the image's ``filename_or_obj`` metadata (the ``input`` the bundle read), the
    geometry its ``affine`` (after ``Invertd``: the input's own grid); a NIfTI input gets no SEG (logged). Use
    ``output_ext=".dcm"``; the bundle sets ``"writer": "$scse_monai.data.DicomSegWriter.for_network(@network_def)"``
    so that the SEG names the network.
    """

    def __init__(self, output_dtype: Any = np.uint8, network: str = "SEUNet", **kwargs: Any) -> None:
        """Writer for ``SaveImage``.

        Args:
            output_dtype: ignored: labels are written as segments.
            network: the network named in the SEG's algorithm identification.
            kwargs: passed to MONAI's ``ImageWriter``.
        """
        super().__init__(output_dtype=np.uint8, affine=None, channel_dim=0, **kwargs)
        self.network = network
        self.source: str | None = None

    @classmethod
    def for_network(cls, network: Any) -> Any:
        """This writer with ``network`` (a module or a name) recorded in the algorithm identification."""
        import functools

        name = network if isinstance(network, str) else type(network).__name__
        return functools.partial(cls, network=name)

    def set_data_array(self, data_array: Any, channel_dim: int | None = 0, squeeze_end_dims: bool = True,
                       **kwargs: Any) -> None:
        """Keep the 3D label map (a single channel is dropped)."""
        data = self.convert_to_channel_last(data=data_array, channel_dim=channel_dim, squeeze_end_dims=False,
                                            spatial_ndim=3, contiguous=False)
        data = np.asarray(data.detach().cpu() if hasattr(data, "detach") else data)
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        self.data_obj = data

    def set_metadata(self, meta_dict: dict | None = None, resample: bool = False, **options: Any) -> None:
        """Take the source folder (``filename_or_obj``) and the affine of the label map from the metadata."""
        meta = meta_dict or {}
        affine = meta.get("affine")
        self.affine = np.asarray(affine.cpu() if hasattr(affine, "cpu") else affine, dtype=np.float64)
        source = meta.get("filename_or_obj")
        self.source = None if source is None else str(source)

    def write(self, filename: str | os.PathLike, verbose: bool = False, **kwargs: Any) -> None:
        """Write the SEG to ``filename`` (atomically); an input that is not a DICOM series folder gets none."""
        from scse_monai.data.dicom_seg import write_dicom_seg

        if self.source is None or not Path(self.source).is_dir():
            logging.getLogger(__name__).info("%s: not a DICOM series, no DICOM SEG written", self.source)
            return
        write_dicom_seg(self.data_obj, self.affine, self.source, filename, network=self.network)
