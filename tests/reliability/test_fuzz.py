"""Property-based fuzzing of the DICOM/PNG readers and the converter: only InvalidInputError may escape.

A valid three-slice CT case (DICOM + 1-bit Ground PNG, see ``reliability_data.make_case_tree``) is mutated at the byte
level (flips, truncation, insertion, deletion) and at the header level (Rows/Columns, PixelSpacing,
ImagePositionPatient/Orientation, BitsAllocated, PixelData length, TransferSyntaxUID, ...; PNG mode, size and
values), then fed to ``read_dicom_series`` / ``read_png_stack`` and ``convert_case``. Whatever the input, the call
either succeeds or raises :class:`~scse_monai.errors.InvalidInputError`, and a failed case leaves no output.
Hypothesis runs derandomised with fixed example counts so CI is reproducible; the number run is in the terminal
summary ("fuzz cases run").
"""

from __future__ import annotations

import io
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom import uid

from scse_monai.apps.chaos.convert import case_outputs, convert_case
from scse_monai.apps.chaos.discover import discover_cases
from scse_monai.apps.chaos.io import read_dicom_series, read_png_stack
from scse_monai.errors import InvalidInputError

from .reliability_data import STATS, make_case_tree

N_SLICES = 3


def _fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid CHAOS root with one three-slice CT case; each example copies it."""
    root = tmp_path_factory.mktemp("fuzz_template") / "chaos"
    make_case_tree(root, n=N_SLICES)
    assert convert_case(discover_cases(root)[0], root.parent / "check")["status"] == "converted"
    return root


def _feed(root: Path, target: str) -> None:
    """Run the reader for ``target`` ("dicom"/"png") and the converter; only InvalidInputError may come out."""
    STATS["fuzz cases run"] += 1
    case = discover_cases(root)[0]
    out = root.parent / "out"
    calls = [lambda: read_dicom_series(case.dicom_dir)] if target == "dicom" else [
        lambda: read_png_stack(case.ground_dir)]
    calls.append(lambda: convert_case(case, out))
    refused = False
    for call in calls:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns on invalid VR values; not what is tested
                call()
        except InvalidInputError as e:
            refused = True
            assert str(e), "empty error message"
            assert not any(p.exists() for p in case_outputs(case, out).values()), "outputs left by a failed case"
        except Exception as e:
            STATS["fuzz cases escaped"] += 1
            raise AssertionError(f"{type(e).__name__} escaped instead of InvalidInputError: {e}") from e
    STATS["fuzz cases refused with InvalidInputError" if refused else "fuzz cases accepted (still valid)"] += 1


def _copy(template: Path) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "chaos"
    shutil.copytree(template, root)
    return tmp, root


# ------------------------------------------------------------------------------------------------ byte mutations

_byte_mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=16))),
    st.tuples(st.just("delete"), st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 64))),
)


def _mutate_bytes(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    buf = bytearray(data)
    if kind == "flip":
        for where, xor in arg:
            buf[int(where * len(buf))] ^= xor
    elif kind == "truncate":
        del buf[int(arg * len(buf)):]
    elif kind == "insert":
        where = int(arg[0] * len(buf))
        buf[where:where] = arg[1]
    else:
        where = int(arg[0] * len(buf))
        del buf[where:where + arg[1]]
    return bytes(buf)


@_fuzz_settings(130)
@given(mutation=_byte_mutation, slice_no=st.integers(1, N_SLICES))
def test_fuzz_dicom_bytes(template: Path, mutation, slice_no: int) -> None:
    tmp, root = _copy(template)
    with tmp:
        path = next(root.rglob(f"s{slice_no}.dcm"))
        path.write_bytes(_mutate_bytes(path.read_bytes(), mutation))
        _feed(root, "dicom")


@_fuzz_settings(60)
@given(mutation=_byte_mutation, slice_no=st.integers(1, N_SLICES))
def test_fuzz_png_bytes(template: Path, mutation, slice_no: int) -> None:
    tmp, root = _copy(template)
    with tmp:
        path = next(root.rglob(f"g{slice_no}.png"))
        path.write_bytes(_mutate_bytes(path.read_bytes(), mutation))
        _feed(root, "png")


# ---------------------------------------------------------------------------------------------- header mutations

_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-(2**31), 2**31),
                    st.sampled_from([0, -1, 1e-9, 1e12]))
_weird_text = st.text(alphabet="0123456789.-eE+ \\abc", max_size=12)
_multi = st.one_of(st.lists(_number, min_size=0, max_size=7), st.lists(_weird_text, min_size=0, max_size=4),
                   st.none())
_TRANSFER_SYNTAXES = [uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian,
                      uid.JPEGBaseline8Bit, uid.JPEG2000Lossless, uid.RLELossless, uid.JPEGLSLossless,
                      "1.2.3.4.5", ""]

_header_mutation = st.one_of(
    st.tuples(st.sampled_from(["Rows", "Columns"]), st.one_of(st.integers(0, 65535), st.none())),
    st.tuples(st.sampled_from(["PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient"]), _multi),
    st.tuples(st.sampled_from(["SliceThickness", "RescaleSlope", "RescaleIntercept"]),
              st.one_of(_number, _weird_text, st.none())),
    st.tuples(st.sampled_from(["BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel"]),
              st.one_of(st.sampled_from([0, 1, 7, 8, 12, 15, 16, 31, 32, 64]), st.none())),
    st.tuples(st.just("PixelDataLength"), st.integers(-240, 240)),
    st.tuples(st.just("TransferSyntaxUID"), st.sampled_from(_TRANSFER_SYNTAXES)),
    st.tuples(st.sampled_from(["Modality", "PhotometricInterpretation"]),
              st.sampled_from(["", "MR", "XA", "RGB", "PALETTE COLOR", "YBR_FULL", None])),
)


def _apply_header(ds: pydicom.Dataset, name: str, value) -> None:
    if name == "PixelDataLength":
        data = ds.PixelData
        ds.PixelData = data[:value] if value < 0 else data + bytes(value)
    elif name == "TransferSyntaxUID":
        ds.file_meta.TransferSyntaxUID = value
    elif value is None:
        if name in ds:
            delattr(ds, name)
    else:
        setattr(ds, name, value)


def _write_explicit_little_endian(ds: pydicom.Dataset) -> io.BytesIO:
    """Write ``ds`` explicit VR little endian whatever its file meta says (pydicom 3.x and 2.4)."""
    buf = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    else:  # pydicom 2.4 (MONAI Label's server packages pin it) takes the encoding from the dataset
        ds.is_implicit_VR, ds.is_little_endian = False, True
        pydicom.dcmwrite(buf, ds, write_like_original=True)
    return buf


@_fuzz_settings(150)
@given(mutations=st.lists(_header_mutation, min_size=1, max_size=3), slice_no=st.integers(1, N_SLICES))
def test_fuzz_dicom_header(template: Path, mutations, slice_no: int) -> None:
    tmp, root = _copy(template)
    with tmp:
        path = next(root.rglob(f"s{slice_no}.dcm"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                for name, value in mutations:
                    _apply_header(ds, name, value)
                # Keep the body's encoding whatever TransferSyntaxUID now claims: a file that lies about itself.
                buf = _write_explicit_little_endian(ds)
        except Exception:
            reject()  # pydicom itself refused to write this dataset: not an input we can produce
        path.write_bytes(buf.getvalue())
        _feed(root, "dicom")


_png_mode = st.sampled_from(["1", "L", "P", "LA", "RGB", "RGBA", "I;16"])


@_fuzz_settings(60)
@given(mode=_png_mode, rows=st.integers(1, 16), cols=st.integers(1, 16), value=st.integers(0, 255),
       slice_no=st.integers(1, N_SLICES))
def test_fuzz_png_header(template: Path, mode: str, rows: int, cols: int, value: int, slice_no: int) -> None:
    tmp, root = _copy(template)
    with tmp:
        path = next(root.rglob(f"g{slice_no}.png"))
        array = np.zeros((rows, cols), np.uint8)
        array[: rows // 2, : cols // 2] = value
        img = Image.fromarray(array, mode="L")
        try:
            (img if mode == "L" else img.convert(mode)).save(path, format="PNG")
        except (OSError, ValueError, KeyError):
            reject()  # PIL cannot write this mode as PNG
        _feed(root, "png")
