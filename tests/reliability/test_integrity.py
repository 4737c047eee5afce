"""Corpus, round 3: damaged compressed inputs, affines with gigantic resampled sizes, and patch sizes the network
cannot take.

- A ``.nii.gz`` whose stream fails its CRC or length check (or is cut, or has garbage behind it) must be refused
  naming the file wherever a NIfTI is read: an image to segment (the bundle's inference), a label map or reference to
  score (``scse-monai evaluate``, the bundle's training and evaluation transforms).
- A volume whose affine implies a gigantic resampled size must be refused by ``CheckImaged`` (before ``Spacingd``
  allocates) naming the file and the size.
- A ``roi_size`` that breaks the network's divisibility rule must be refused naming ``roi_size``.

Workflow cases run the bundle in-process under an alarm; the error must be an InvalidInputError naming the culprit
somewhere in the exception chain (MONAI and ignite wrap errors), and nothing may have been written.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scse_monai.errors import InvalidInputError

from .corpus import Hang, alarm, fingerprint, record, run_case
from .reliability_data import BUNDLE_CONFIGS, first_exception_of, inference_workflow

CATEGORY = "integrity and sizes"


def _volume(path: Path, data: np.ndarray | None = None, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.random.default_rng(0).normal(size=(16, 16, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([6.0, 6.0, 5.0, 1.0]) if affine is None else affine), path)
    return path


def _labels(path: Path) -> Path:
    data = np.zeros((16, 16, 3), np.uint8)
    data[4:10, 5:12, :] = 1
    data[11:14, 2:6, 1:] = 2
    return _volume(path, data)


# ---------------------------------------------------------------------------------------------------------------
# damaged gzip streams (each damage leaves nibabel able to read every voxel)


def _flip_crc(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # first byte of the CRC-32 in the trailer
    path.write_bytes(bytes(data))
    return path


def _wrong_length(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # ISIZE: uncompressed length modulo 2**32
    path.write_bytes(bytes(data))
    return path


def _payload_edited(path: Path) -> Path:
    """Recompress with one voxel changed, then put the original CRC back: data and checksum disagree."""
    original = gzip.decompress(path.read_bytes())
    crc = path.read_bytes()[-8:]
    edited = bytearray(original)
    edited[-5] ^= 0x40
    blob = gzip.compress(bytes(edited))
    path.write_bytes(blob[:-8] + crc)
    return path


def _garbage_behind(path: Path) -> Path:
    path.write_bytes(path.read_bytes() + b"this is not gzip")
    return path


def _cut_trailer(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:-6])
    return path


DAMAGE: dict[str, Callable[[Path], Path]] = {
    "CRC flipped": _flip_crc,
    "length field wrong": _wrong_length,
    "data edited, CRC kept": _payload_edited,
    "garbage after the stream": _garbage_behind,
    "trailer cut": _cut_trailer,
}


def _workflow_outcome(run: Callable[[], object], culprit: str, out: Path | None) -> tuple[str, str]:
    try:
        with alarm(60):
            run()
        error: BaseException | None = None
    except Exception as e:  # noqa: BLE001 - classified below
        error = e
    found = first_exception_of(error, InvalidInputError) if error is not None else None
    if isinstance(error, Hang) or first_exception_of(error, Hang) is not None:
        return "hangs", str(error)
    if error is None:
        return "silent wrong", "no error"
    if found is None or culprit not in str(found) or "\n" in str(found).strip():
        return "escaped", f"{type(error).__name__}: {error}"
    if out is not None and out.exists() and [p for p in out.rglob("*") if p.is_file()]:
        return "silent wrong", "a prediction was written"
    return "refused clearly", str(found)


def _infer(image: Path, out: Path, bundle_root: Path) -> Callable[[], object]:
    def run() -> None:
        workflow = inference_workflow(image, out, bundle_root)
        workflow.initialize()
        workflow.run()

    return run


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_gzip_image_is_not_segmented(damage: str, tmp_path: Path) -> None:
    image = DAMAGE[damage](_volume(tmp_path / "in" / "scan.nii.gz"))
    before = fingerprint([image])
    out = tmp_path / "pred"
    outcome, detail = _workflow_outcome(_infer(image, out, tmp_path), "scan.nii.gz", out)
    if fingerprint([image]) != before:
        outcome = "data loss"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("which", ["--ground", "--pred"])
def test_damaged_gzip_label_is_not_scored(damage: str, which: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    ground = _labels(tmp_path / "ground.nii.gz")
    pred = _labels(tmp_path / "pred.nii.gz")
    culprit = DAMAGE[damage](ground if which == "--ground" else pred)
    run_case(CATEGORY, ["evaluate", "--ground", ground, "--pred", pred, "--spacing", "6", "6", "5", "--json",
                        tmp_path / "out" / "m.json"], capsys, names=[str(culprit), "gzip"],
             protect=[ground, pred], sandbox=tmp_path)


def _bundle_transforms(config_files: list[str], key: str):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE_CONFIGS / f) for f in config_files])
    parser["pixdim"] = [6.0, 6.0]
    content = parser.get_parsed_content(key)
    from monai.transforms import Compose

    return content if isinstance(content, Compose) else Compose(content)


@pytest.mark.parametrize("damaged", ["image", "label"])
@pytest.mark.parametrize("chain", ["training", "evaluation"])
def test_damaged_gzip_in_the_bundles_transforms(damaged: str, chain: str, tmp_path: Path) -> None:
    """train.json's ``load_volume`` (training and validation) and evaluate.json's preprocessing (the reference)."""
    entry = {"image": str(_volume(tmp_path / "img.nii.gz")), "label": str(_labels(tmp_path / "lab.nii.gz")),
             "modality": "ct"}
    culprit = _flip_crc(Path(entry[damaged]))
    if chain == "training":
        transforms = _bundle_transforms(["train.json"], "load_volume")
    else:
        transforms = _bundle_transforms(["train.json", "evaluate.json"], "validate#preprocessing")
        entry["reference"] = entry["label"]
    outcome, detail = _workflow_outcome(lambda: transforms(dict(entry)), culprit.name, None)
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


def test_intact_gzip_streams_are_read(tmp_path: Path) -> None:
    """Valid after all: a concatenation of two gzip members and a stream padded with zeros read as one file."""
    from scse_monai.data.nifti import read_nifti

    image = _volume(tmp_path / "a.nii.gz")
    raw = gzip.decompress(image.read_bytes())
    members = tmp_path / "members.nii.gz"
    members.write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]))
    padded = tmp_path / "padded.nii.gz"
    padded.write_bytes(image.read_bytes() + b"\0" * 64)
    expected, _ = read_nifti(image)
    for path in (members, padded):
        data, _ = read_nifti(path)
        np.testing.assert_array_equal(data, expected)
    transforms = _bundle_transforms(["train.json"], "load_volume")
    out = transforms({"image": str(members), "label": str(_labels(tmp_path / "l.nii.gz")), "modality": "ct"})
    assert tuple(out["image"].shape) == (1, 16, 16, 3)
    record(CATEGORY, "correct result")


# ---------------------------------------------------------------------------------------------------------------
# gigantic resampled sizes


AFFINES = {
    "voxels of 10 m": np.diag([1e4, 1e4, 5.0, 1.0]),
    "slices 100 km apart": np.diag([6.0, 6.0, 1e8, 1.0]),
    "sheared into kilometres": np.array([[6.0, 5e5, 0, 0], [0, 6.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 1]]),
    "micrometre units read as mm": np.diag([700.0, 700.0, 3000.0, 1.0]),
}


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_gigantic_resampling_is_refused_before_spacing(name: str, tmp_path: Path) -> None:
    image = _volume(tmp_path / "in" / "big.nii.gz", affine=AFFINES[name])
    out = tmp_path / "pred"
    outcome, detail = _workflow_outcome(_infer(image, out, tmp_path), "big.nii.gz", out)
    if outcome == "refused clearly" and "field of view" not in detail:
        outcome = "escaped"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


def test_gigantic_resampling_in_training_names_file_and_size(tmp_path: Path) -> None:
    entry = {"image": str(_volume(tmp_path / "img.nii.gz", affine=AFFINES["voxels of 10 m"])),
             "label": str(_labels(tmp_path / "lab.nii.gz")), "modality": "ct"}
    transforms = _bundle_transforms(["train.json"], "load_volume")
    outcome, detail = _workflow_outcome(lambda: transforms(entry), "img.nii.gz", None)
    if outcome == "refused clearly" and "160000 x 160000 x 15 mm" not in detail:
        outcome = "escaped"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


def test_resampled_voxel_bound_with_the_target_pixdim() -> None:
    import torch
    from monai.data import MetaTensor

    from scse_monai.transforms import CheckImage

    img = MetaTensor(torch.zeros(1, 64, 64, 8), affine=torch.diag(torch.tensor([5.6, 5.6, 5.0, 1.0])),
                     meta={"filename_or_obj": "scan.nii.gz"})
    assert CheckImage(pixdim=[1.5, 1.5, 0.0])(img) is img  # a 358 x 358 x 40 mm body scan: 239 x 239 x 8
    with pytest.raises(InvalidInputError, match=r"scan.nii.gz.*35840 x 35840 x 8.*max_voxels"):
        CheckImage(pixdim=[0.01, 0.01, 0.0])(img)
    record(CATEGORY, "correct result")
    record(CATEGORY, "refused clearly")


# ---------------------------------------------------------------------------------------------------------------
# roi_size against the network's down-sampling


def _network(files: list[str], **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE_CONFIGS / f) for f in files])
    for k, v in overrides.items():
        parser[k] = v
    return parser.get_parsed_content("network_def")


ROI_CASES = {
    "3D, x not a multiple of 16": (["train.json", "train_3d.json"], [100, 128, 32], "[96, 128, 32]"),
    "3D, z not a multiple of 8": (["train.json", "train_3d.json"], [128, 128, 30], "[128, 128, 32]"),
    "3D, two entries": (["train.json", "train_3d.json"], [128, 128], "3 positive integers"),
    "3D, zero": (["train.json", "train_3d.json"], [128, 0, 32], "3 positive integers"),
    "3D, fractional": (["train.json", "train_3d.json"], [128, 128, 32.5], "3 positive integers"),
    "2D, not a multiple of 16": (["train.json"], [250, 256], "[256, 256]"),
}


@pytest.mark.parametrize("name", sorted(ROI_CASES))
def test_roi_size_breaking_divisibility_is_named(name: str) -> None:
    from scse_monai.transforms import check_roi_size

    files, roi, hint = ROI_CASES[name]
    net = _network(files, **({"network_def#filters": [4, 8, 8, 8, 8]} if len(files) > 1 else
                             {"network_def#channels": [4, 8, 8, 8, 8]}))
    with pytest.raises(InvalidInputError) as e:
        check_roi_size(roi, net)
    ok = "roi_size" in str(e.value) and hint in str(e.value)
    record(CATEGORY, "refused clearly" if ok else "escaped")
    assert ok, str(e.value)


def test_valid_roi_sizes_pass_and_run() -> None:
    import torch

    from scse_monai.transforms import check_roi_size, network_divisor

    net = _network(["train.json", "train_3d.json"], **{"network_def#filters": [4, 8, 8, 8, 8]}).eval()
    assert network_divisor(net) == [16, 16, 8]
    roi = check_roi_size([32, 48, 16], net)
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 1, *roi)).shape[2:]) == (32, 48, 16)
    assert check_roi_size((128, 128, 32), net) == [128, 128, 32]
    record(CATEGORY, "correct result")


def test_inference_output_equal_to_the_input_folder(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    image = _volume(folder / "scan.nii.gz")
    before = fingerprint([folder])
    outcome, detail = _workflow_outcome(_infer(folder, folder, tmp_path), str(folder), None)
    if fingerprint([folder]) != before:
        outcome = "data loss"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail
    assert image.is_file() and sorted(p.name for p in folder.iterdir()) == ["scan.nii.gz"]
    shutil.rmtree(folder)
