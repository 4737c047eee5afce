"""DICOM SEG predictions (scse_monai.data.dicom_seg): codes, geometry, round trip, atomic writes, missing highdicom.

The SEG tests need the ``dicom`` extra (highdicom, which needs pydicom 3), which cannot share an environment with the
``label`` extra (pydicom-seg, pydicom 2): CI runs them in an overlay environment (``.ci/run``); here they skip when
highdicom is absent. The test of the missing-highdicom error runs in both.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from scse_monai.apps.chaos.io import read_png_stack
from scse_monai.apps.chaos.labels import labels_from_ct_ground, labels_from_mr_grey
from scse_monai.apps.chaos.phantom import make_phantom
from scse_monai.data.dicom import read_dicom_series
from scse_monai.data.labels import ORGANS
from scse_monai.errors import InvalidInputError

needs_highdicom = pytest.mark.skipif(
    importlib.util.find_spec("highdicom") is None,
    reason="the dicom extra (highdicom, pydicom 3) is not installed; .ci/run runs these tests in its own environment",
)

#: label -> (SNOMED CT code of the property type, laterality modifier code or None): independent of pydicom's table.
EXPECTED_CODES = {1: ("10200004", None), 2: ("64033007", "24028007"), 3: ("64033007", "7771000"), 4: ("78961009", None)}


@pytest.fixture(scope="module")
def chaos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("seg_phantom"), n_ct=1, n_mr=1, seed=3)


def _ground_labels(root: Path, modality: str) -> tuple[Path, np.ndarray]:
    """(series folder, data-contract label map from the organisers' Ground): slice k is the k-th file by name."""
    if modality == "ct":
        ground = read_png_stack(root / "Train_Sets/CT/1/Ground")
        return root / "Train_Sets/CT/1/DICOM_anon", labels_from_ct_ground(ground)
    labels, _ = labels_from_mr_grey(read_png_stack(root / "Train_Sets/MR/1/T1DUAL/Ground"))
    return root / "Train_Sets/MR/1/T1DUAL/DICOM_anon/InPhase", labels


def _decode_with_pydicom(path: Path, source: Path) -> np.ndarray:
    """The SEG's label map (slices in the source's file-name order, rows, columns) decoded with pydicom alone."""
    ds = pydicom.dcmread(str(path))
    uids = [pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID for p in read_dicom_series(source).files]
    bits = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    out = np.zeros((len(uids), ds.Rows, ds.Columns), np.uint8)
    for frame, group in zip(bits, ds.PerFrameFunctionalGroupsSequence, strict=True):
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        k = uids.index(uid)
        assert not np.any(out[k][frame > 0]), "segments overlap"
        out[k][frame > 0] = segment
    return out


@needs_highdicom
@pytest.mark.parametrize("modality", ["ct", "mr"])
def test_seg_round_trip_codes_and_references(chaos_root: Path, modality: str, tmp_path: Path) -> None:
    import highdicom as hd

    from scse_monai.data.dicom_seg import ORGAN_RGB, read_dicom_seg, write_dicom_seg

    source, labels = _ground_labels(chaos_root, modality)
    series = read_dicom_series(source, with_pixels=False)
    assert labels.shape == series.shape and labels.any()
    # Written from another grid (ITK's: slices by position, which for the CT phantom is the reverse of name order):
    # the SEG must follow the instances, not the array order.
    from monai.transforms import LoadImage

    itk_affine = LoadImage(image_only=True)(str(source)).affine.numpy()
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(series.affine),
                                           nib.orientations.io_orientation(itk_affine))
    itk_labels = nib.orientations.apply_orientation(labels, ornt)
    if modality == "ct":
        assert not series.name_order_matches_position and np.array_equal(itk_labels, labels[:, :, ::-1])
    out = write_dicom_seg(itk_labels, itk_affine, source, tmp_path / "seg.dcm", network="SEUNet")
    expected = np.transpose(labels, (2, 1, 0))  # data contract: volume[:, :, k] == pixel_array_k.T
    assert np.array_equal(read_dicom_seg(out, source), expected)  # highdicom's decoder
    assert np.array_equal(_decode_with_pydicom(out, source), expected)  # pydicom's, independent of highdicom
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm"]  # no temporary left

    ds = pydicom.dcmread(str(out))
    src = pydicom.dcmread(str(series.files[0]), stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    referenced = {r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID for p in series.files}
    assert ds.Manufacturer == "scse_monai" and ds.ManufacturerModelName == "SEUNet"
    segments = {int(s.SegmentNumber): s for s in ds.SegmentSequence}
    assert sorted(segments) == sorted(ORGANS)
    for label, organ in ORGANS.items():
        s = segments[label]
        code, laterality = EXPECTED_CODES[label]
        assert s.SegmentLabel == organ and s.SegmentAlgorithmType == "AUTOMATIC"
        prop = s.SegmentedPropertyTypeCodeSequence[0]
        assert (prop.CodingSchemeDesignator, prop.CodeValue) == ("SCT", code)
        modifiers = [m.CodeValue for m in prop.get("SegmentedPropertyTypeModifierCodeSequence", [])]
        assert modifiers == ([laterality] if laterality else [])
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
        rgb = hd.color.CIELabColor.from_dicom_value(s.RecommendedDisplayCIELabValue).to_rgb()
        assert np.allclose(rgb, ORGAN_RGB[label], atol=1)  # the figures' colour of the organ
        algorithm = s.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "scse_monai" and algorithm.AlgorithmParameters == "network=SEUNet"
    colours = {tuple(s.RecommendedDisplayCIELabValue) for s in segments.values()}
    assert len(colours) == len(ORGANS)  # one distinct colour per organ
    seg = hd.seg.segread(str(out))  # highdicom parses it back as a Segmentation
    assert sorted(seg.segment_numbers) == sorted(ORGANS)


@needs_highdicom
def test_seg_refuses_other_grids_and_values_without_touching_the_file(chaos_root: Path, tmp_path: Path) -> None:
    from scse_monai.data.dicom_seg import write_dicom_seg

    source, labels = _ground_labels(chaos_root, "ct")
    affine = read_dicom_series(source, with_pixels=False).affine
    target = tmp_path / "seg.dcm"
    target.write_bytes(b"previous result")
    shifted = affine.copy()
    shifted[:3, 3] += 0.5 * affine[:3, 0]  # half a voxel off: not this series' grid
    with pytest.raises(InvalidInputError, match=r"DICOM_anon: the label map .* does not lie on the grid of instance 0"):
        write_dicom_seg(labels, shifted, source, target)
    with pytest.raises(InvalidInputError, match=r"does not lie on the grid"):
        write_dicom_seg(labels[:, :, :-1], affine, source, target)  # one slice short
    with pytest.raises(InvalidInputError, match=r"label map holds values \[0, 7\]; expected 0\.\.4"):
        write_dicom_seg(np.where(labels > 0, 7, 0), affine, source, target)
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm"]
    # a prediction without any organ is still a valid SEG (highdicom refuses one without frames)
    from scse_monai.data.dicom_seg import read_dicom_seg

    write_dicom_seg(np.zeros_like(labels), affine, source, target)
    assert not read_dicom_seg(target, source).any()


def test_missing_highdicom_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from scse_monai.data import list_inference_inputs
    from scse_monai.data.dicom_seg import require_highdicom

    monkeypatch.setitem(sys.modules, "highdicom", None)  # import highdicom -> ImportError, as if not installed
    with pytest.raises(ModuleNotFoundError, match=r'needs highdicom.*pip install "scse_monai\[dicom\]"'):
        require_highdicom()
    root = make_phantom(tmp_path / "raw", n_ct=1, n_mr=0, seed=0)
    with pytest.raises(ModuleNotFoundError, match=r"scse_monai\[dicom\]"):
        list_inference_inputs(root, tmp_path / "pred", output_format="dicom_seg")
    assert not (tmp_path / "pred").exists()
    # NIfTI output needs no highdicom
    assert [d["name"] for d in list_inference_inputs(root, tmp_path / "pred")] == ["ct_1"]


def _monailabel_convert() -> object:
    try:
        from monailabel.datastore.utils.convert import nifti_to_dicom_seg
    except Exception as e:  # not installed, or pydicom-seg on pydicom 3 (the dicom extra's environment)
        pytest.skip(f"MONAI Label 0.8.5's DICOM SEG conversion cannot be imported here ({type(e).__name__})")
    return nifti_to_dicom_seg


def test_monailabel_conversion_with_our_label_info(chaos_root: Path, tmp_path: Path) -> None:
    """MONAI Label 0.8.5 converts the bundle's NIfTI label map to DICOM SEG itself (nifti_to_dicom_seg; the server
    passes use_itk=True, i.e. dcmqi's itkimage2segimage, which is not installed here: the same dcmqi template goes
    through pydicom-seg with use_itk=False). monailabel_label_info gives it our codes; label_info[i] describes the
    i-th label present, so with an organ absent only the present organs' entries may be sent."""
    from scse_monai.data.dicom_seg import monailabel_label_info

    nifti_to_dicom_seg = _monailabel_convert()
    source = chaos_root / "Train_Sets/MR/1/T2SPIR/DICOM_anon"
    labels, _ = labels_from_mr_grey(read_png_stack(chaos_root / "Train_Sets/MR/1/T2SPIR/Ground"))
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3, 4]
    affine = read_dicom_series(source, with_pixels=False).affine
    info = monailabel_label_info()
    for present in ([1, 2, 3, 4], [1, 3, 4]):
        case = np.where(np.isin(labels, present), labels, 0).astype(np.uint8)
        label_file = tmp_path / f"label_{len(present)}.nii.gz"
        nib.save(nib.Nifti1Image(case, affine), str(label_file))
        if present == [1, 3, 4]:  # all four entries for three present labels: MONAI Label 0.8.5 fails
            with pytest.raises(ValueError, match="declaration is missing"):
                nifti_to_dicom_seg(str(source), str(label_file), info, use_itk=False)
        out = nifti_to_dicom_seg(str(source), str(label_file), [info[k - 1] for k in present], use_itk=False)
        assert np.array_equal(_decode_with_pydicom(Path(out), source), np.transpose(case, (2, 1, 0)))
        ds = pydicom.dcmread(out)
        for s in ds.SegmentSequence:
            code, laterality = EXPECTED_CODES[int(s.SegmentNumber)]
            prop = s.SegmentedPropertyTypeCodeSequence[0]
            assert s.SegmentLabel == ORGANS[int(s.SegmentNumber)] and prop.CodeValue == code
            # pydicom-seg puts the laterality beside the property type, not inside it as dcmqi and the standard do
            modifiers = [m.CodeValue for m in s.get("SegmentedPropertyTypeModifierCodeSequence", [])]
            assert modifiers == ([laterality] if laterality else [])
        assert sorted(int(s.SegmentNumber) for s in ds.SegmentSequence) == present
        Path(out).unlink()
