"""DICOM SEG predictions with highdicom: one segment per organ, on the source series' instances and geometry.

A label map in a NIfTI-style grid (array + RAS affine, e.g. the bundle's prediction after ``Invertd``) is written as
one DICOM Segmentation (BINARY) that references the source series it was predicted from, so viewers (OHIF, 3D
Slicer) overlay it on the images:

- one segment per organ of the label space (:data:`scse_monai.data.labels.ORGANS`), segment number = label value,
  with its label, the category "Anatomical Structure" and SNOMED CT property types from pydicom's code dictionary
  (liver 10200004, spleen 78961009, kidney 64033007 with the laterality modifier right 24028007 / left 7771000, the
  DICOM way of coding a side: Segmented Property Type Modifier Code Sequence, PS3.3 C.8.20.2), a recommended display
  colour (CIELab) and the algorithm (AUTOMATIC; name ``scse_monai``, its version, the network);
- frame k is the label map sampled at the pixels of source instance k: every pixel centre of the instance is mapped
  through the DICOM geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing; LPS) and the inverse
  affine to a voxel, which must be a grid point of the label map (else the grid does not belong to the series and
  nothing is written). So the SEG follows the instances whatever slice order and axis flips the reader used.

highdicom is an optional dependency (the ``dicom`` extra: highdicom >= 0.28, which needs pydicom 3; 0.22, the last
release for pydicom 2, fails with numpy 2), imported on first use, with an error naming the extra. The laterality
modifier is set as a DICOM attribute: highdicom's ``SegmentDescription`` has no argument for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scse_monai.data.labels import ORGAN_RGB
from scse_monai.errors import InvalidInputError

__all__ = ["ORGAN_RGB", "monailabel_label_info", "read_dicom_seg", "require_highdicom", "segment_descriptions",
           "source_frames", "write_dicom_seg"]

#: largest distance (voxels) between a pixel centre of an instance and the nearest label-map voxel.
GRID_TOLERANCE = 0.1
_INSTALL = 'pip install "scse_monai[dicom]"'
#: segment category (CID 7150 "Anatomical Structure"): pydicom's dictionary has two codes under that name.
_CATEGORY = ("91723000", "SCT", "Anatomical Structure")
# Source attributes the SEG copies: Type 1 ones must be there; Type 2 ones missing in a file (anonymised or
# synthetic data) are added empty to the in-memory copy, as the standard allows. The files are never changed.
_TYPE1 = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def require_highdicom() -> Any:
    """Import highdicom, or fail with an error that names the extra to install.

    Raises:
        ModuleNotFoundError: highdicom is not installed.
    """
    try:
        import highdicom
    except ImportError as e:
        raise ModuleNotFoundError(
            f"DICOM SEG output needs highdicom, which is not installed: {_INSTALL} (NIfTI output works without it)",
            name="highdicom",
        ) from e
    return highdicom


def _property_type(label: int) -> tuple[Any, Any | None]:
    """``(property type, laterality modifier or None)`` of an organ, from pydicom's SNOMED CT dictionary."""
    from pydicom.sr.codedict import codes

    from scse_monai.data.labels import ORGANS

    types = {
        "liver": (codes.SCT.Liver, None),
        "right kidney": (codes.SCT.Kidney, codes.SCT.Right),
        "left kidney": (codes.SCT.Kidney, codes.SCT.Left),
        "spleen": (codes.SCT.Spleen, None),
    }
    return types[ORGANS[label]]


def segment_descriptions(network: str) -> list[Any]:
    """The highdicom segment descriptions of the label space, in label order (segment number = label value)."""
    hd = require_highdicom()
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    from scse_monai import __version__
    from scse_monai.data.labels import ORGANS

    algorithm = hd.AlgorithmIdentificationSequence(
        name="scse_monai", family=codes.cid7162.ArtificialIntelligence, version=__version__,
        parameters={"network": network},
    )
    category = Code(*_CATEGORY)
    descriptions = []
    for label, organ in ORGANS.items():
        property_type, laterality = _property_type(label)
        desc = hd.seg.SegmentDescription(
            segment_number=label, segment_label=organ, segmented_property_category=category,
            segmented_property_type=property_type, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=f"scse_monai {organ}",
            display_color=hd.color.CIELabColor.from_rgb(*ORGAN_RGB[label]),
        )
        if laterality is not None:
            modifier = hd.sr.CodedConcept(laterality.value, laterality.scheme_designator, laterality.meaning)
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(desc)
    return descriptions


def _dcmqi_code(code: Any) -> dict[str, str]:
    return {"CodeValue": code.value, "CodingSchemeDesignator": code.scheme_designator, "CodeMeaning": code.meaning}


def monailabel_label_info(network: str = "SEUNet") -> list[dict[str, Any]]:
    """``label_info`` for MONAI Label 0.8.5's DICOM SEG conversion: the same segments as :func:`write_dicom_seg`.

    MONAI Label (``monailabel.datastore.utils.convert.nifti_to_dicom_seg``, used by ``/infer?output=dicom_seg`` and
    by saving a final label to a DICOMweb datastore) takes each segment's attributes from ``label_info`` in dcmqi's
    ``segmentAttribute`` format; without them it codes every segment as SNOMED CT 78961009 (spleen). It pairs
    ``label_info[i]`` with the i-th label *present* in the label map, so send the entries of the labels present, in
    label order (see the bundle README). No highdicom needed.
    """
    from scse_monai.data.labels import ORGANS

    info = []
    for label, organ in ORGANS.items():
        property_type, laterality = _property_type(label)
        attribute = {
            "labelID": label,
            "SegmentLabel": organ,
            "SegmentDescription": organ,
            "SegmentAlgorithmType": "AUTOMATIC",
            "SegmentAlgorithmName": "scse_monai",
            "SegmentedPropertyCategoryCodeSequence": dict(zip(("CodeValue", "CodingSchemeDesignator", "CodeMeaning"),
                                                              _CATEGORY, strict=True)),
            "SegmentedPropertyTypeCodeSequence": _dcmqi_code(property_type),
            "recommendedDisplayRGBValue": list(ORGAN_RGB[label]),
        }
        if laterality is not None:
            attribute["SegmentedPropertyTypeModifierCodeSequence"] = _dcmqi_code(laterality)
        info.append({"name": organ, "description": organ, "color": list(ORGAN_RGB[label]), "model_name": network,
                     "segmentAttribute": attribute})
    return info


def _read_source(folder: str | os.PathLike) -> list[Any]:
    """The source series' datasets in file-name order, validated by the series reader first."""
    import pydicom

    from scse_monai.data.dicom import read_dicom_series

    series = read_dicom_series(folder, with_pixels=False)
    datasets = [pydicom.dcmread(str(p)) for p in series.files]
    for path, ds in zip(series.files, datasets, strict=True):
        missing = [k for k in _TYPE1 if not ds.get(k)]
        if missing:
            raise InvalidInputError(f"lacks {', '.join(missing)}; a DICOM SEG must reference them", path)
        for keyword in _TYPE2:  # copied into the SEG by highdicom; Type 2 (PS3.3 C.7.1.1, C.7.2.1): may be empty
            if keyword not in ds:
                setattr(ds, keyword, "")
    return datasets


def source_frames(labels: np.ndarray, affine: np.ndarray, datasets: Sequence[Any], source: object = None) \
        -> np.ndarray:
    """``labels`` sampled at the pixels of each source instance: ``(instances, rows, columns)``, instance order.

    Args:
        labels: 3D label map (array axes as in ``affine``).
        affine: voxel -> RAS (mm) matrix of ``labels``.
        datasets: the source instances (single-frame, with ImagePositionPatient, ImageOrientationPatient,
            PixelSpacing).
        source: what to name in errors (the series folder).

    Raises:
        InvalidInputError: a pixel centre of an instance is not within :data:`GRID_TOLERANCE` voxels of a voxel of
            ``labels`` (a label map of another grid or series).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InvalidInputError(f"label map has shape {labels.shape}; expected a 3D volume", source)
    to_voxel = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS -> voxel
    frames = np.zeros((len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)), dtype=labels.dtype)
    for n, ds in enumerate(datasets):
        iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        origin = to_voxel @ np.append(np.asarray(ds.ImagePositionPatient, dtype=np.float64), 1.0)
        d_col = to_voxel[:, :3] @ (iop[:3] * col_spacing)  # one column to the right (DICOM PS3.3 C.7.6.2.1.1)
        d_row = to_voxel[:, :3] @ (iop[3:6] * row_spacing)  # one row down
        rows, cols = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
        vox = origin[:3] + rows[..., None] * d_row[:3] + cols[..., None] * d_col[:3]
        idx = np.rint(vox).astype(np.int64)
        off = float(np.abs(vox - idx).max())
        inside = np.all((idx >= 0) & (idx < labels.shape), axis=-1)
        if off > GRID_TOLERANCE or not inside.all():
            raise InvalidInputError(
                f"the label map (shape {labels.shape}) does not lie on the grid of instance {n} (SOPInstanceUID "
                f"{ds.SOPInstanceUID}): pixel centres {off:.3g} voxels from its grid, {int((~inside).sum())} outside; "
                "expected the prediction of this series in its own geometry",
                source,
            )
        frames[n] = labels[idx[..., 0], idx[..., 1], idx[..., 2]]
    return frames


def write_dicom_seg(
    labels: np.ndarray,
    affine: np.ndarray,
    source: str | os.PathLike,
    filename: str | os.PathLike,
    network: str = "SEUNet",
    series_number: int = 900,
) -> Path:
    """Write ``labels`` (the prediction of the DICOM series in folder ``source``) as a DICOM SEG, atomically.

    Args:
        labels: 3D label map with values in the label space (0 background).
        affine: its voxel -> RAS matrix.
        source: the folder of the source series (read in file-name order and validated).
        filename: the ``.dcm`` file to write (replaced atomically if it exists).
        network: the network named in the algorithm identification.
        series_number: SeriesNumber of the new SEG series.

    Raises:
        InvalidInputError: ``labels`` holds values outside the label space or is not on the series' grid.
        ModuleNotFoundError: highdicom is not installed.
    """
    hd = require_highdicom()
    from scse_monai import __version__
    from scse_monai.data.labels import NUM_CLASSES
    from scse_monai.utils.io import atomic_path

    labels = np.asarray(labels)
    values = np.unique(labels)
    if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES or not np.all(values == np.round(values))):
        raise InvalidInputError(f"label map holds values {values[:8].tolist()}; expected 0..{NUM_CLASSES - 1}", source)
    datasets = _read_source(source)
    frames = source_frames(labels.astype(np.uint8), affine, datasets, source)
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(network),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="scse_monai",
        manufacturer_model_name=network,
        software_versions=__version__,
        device_serial_number="none",
        series_description=f"{network} organ segmentation",
        content_label="ORGANS",
        omit_empty_frames=bool(frames.any()),  # highdicom refuses a SEG without frames
    )
    filename = Path(filename)
    with atomic_path(filename) as tmp:
        seg.save_as(str(tmp))
    return filename


def read_dicom_seg(filename: str | os.PathLike, source: str | os.PathLike) -> np.ndarray:
    """Decode a SEG written by :func:`write_dicom_seg` into a label map ``(instances, rows, columns)``.

    Frame k belongs to the k-th instance of ``source`` in file-name order; pixels of no segment are 0.
    """
    hd = require_highdicom()
    import pydicom

    from scse_monai.data.dicom import list_slices

    seg = hd.seg.segread(str(filename))
    uids = [pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID for p in list_slices(source)]
    return seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, assert_missing_frames_are_empty=True
    )
