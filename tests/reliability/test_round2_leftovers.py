"""Corpus, round 3: what round 2 left -- Ctrl-C, unreadable files and folders, FIFOs, JPEG 2000 without a decoder,
Unicode digits in slice names, and an output folder equal to the CHAOS root -- against ``convert``, ``evaluate`` and
the bundle's inference.

The tests run as root, where permission bits do not stop reads; an unreadable file or folder is simulated at the
system-call wrappers every reader goes through (``open``, ``os.open``, ``os.listdir``, ``os.scandir``, and ``os.stat``
below a folder without permissions), raising ``PermissionError`` as the kernel would. Ctrl-C is a real SIGINT sent to
the whole process group of a real ``scse-monai convert`` while it writes a case.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scse_monai.errors import InvalidInputError

from .corpus import Hang, alarm, fingerprint, record, run_case
from .reliability_data import first_exception_of, inference_workflow, make_case_tree, read_dataset, write_dicom

CATEGORY = "round-2 leftovers"
REPO = Path(__file__).resolve().parents[2]


def _raw(tmp_path: Path, n_cases: int = 2, n: int = 4) -> Path:
    root = tmp_path / "raw"
    for k in range(n_cases):
        make_case_tree(root, n=n, case_id=str(k + 1), seed=k)
    return root


# ---------------------------------------------------------------------------------------------------------------
# Ctrl-C


_SLOW_CONVERT = """
import os, sys, time
import scse_monai.apps.chaos.convert as convert
real = convert._save_nifti
def slow(image, path):
    open(os.environ["STARTED_FLAG"], "a").close()
    time.sleep(float(os.environ["SLOW_S"]))
    real(image, path)
convert._save_nifti = slow
from scse_monai.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_during_convert(workers: int, tmp_path: Path) -> None:
    """SIGINT to the process group while a case is being written: one line, exit 130, no temporaries, input as is."""
    root = _raw(tmp_path, n_cases=3)
    out = tmp_path / "out"
    flag = tmp_path / "started"
    before = fingerprint([root])
    env = {**os.environ, "STARTED_FLAG": str(flag), "SLOW_S": "0.6", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CONVERT, "convert", str(root), str(out), "--quiet",
                             "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # inside the slow write
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        record(CATEGORY, "hangs")
        raise
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    temporaries = [p for p in out.rglob("*") if ".tmp" in p.name] if out.exists() else []
    if fingerprint([root]) != before:
        outcome = "data loss"
    elif proc.returncode == 130 and lines == ["scse-monai convert: interrupted"] and not temporaries:
        outcome = "refused clearly"
    else:
        outcome = "escaped"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", (proc.returncode, err[-800:], temporaries)


def test_ctrl_c_while_modules_load_waits_for_the_imports() -> None:
    """A SIGINT during the imports (an extension module would turn it into an ImportError) is delivered after them."""
    from scse_monai.cli import _interrupts_deferred

    reached = False
    with pytest.raises(KeyboardInterrupt):
        with _interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True  # the interrupt has not fired inside the block
    assert reached and signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------------------------------------------------
# unreadable files and folders


def _deny(monkeypatch: pytest.MonkeyPatch, *blocked: Path) -> None:
    """Make ``blocked`` files unreadable and ``blocked`` folders unlistable and untraversable (mode 000)."""
    blocked_s = [os.path.abspath(b) for b in blocked]

    def hit(path, below_only: bool = False) -> str | None:
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:  # a file descriptor
            return None
        for b in blocked_s:
            if p.startswith(b + os.sep) or (not below_only and p == b):
                return p
        return None

    def deny(p: str):
        raise PermissionError(errno.EACCES, "Permission denied", p)

    def wrap(real, below_only: bool = False):
        def inner(path, *args, **kwargs):
            if (p := hit(path, below_only)) is not None:
                deny(p)
            return real(path, *args, **kwargs)

        return inner

    monkeypatch.setattr(builtins, "open", wrap(builtins.open))
    monkeypatch.setattr(io, "open", wrap(io.open))
    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(os, "listdir", wrap(os.listdir))
    monkeypatch.setattr(os, "scandir", wrap(os.scandir))
    monkeypatch.setattr(os, "stat", wrap(os.stat, below_only=True))


def _convert_case(what: str, root: Path) -> tuple[Path, str | None]:
    """(the path made unreadable, the FAILED case or None for a one-line error of the whole run)."""
    dicom = root / "Train_Sets" / "CT" / "1" / "DICOM_anon"
    return {
        "a DICOM slice": (dicom / "s2.dcm", "ct_1"),
        "a Ground PNG": (dicom.parent / "Ground" / "g3.png", "ct_1"),
        "a DICOM folder": (dicom, "ct_1"),
        "a case folder": (dicom.parent, "ct_1"),
        "the CT set folder": (root / "Train_Sets" / "CT", None),
        "the CHAOS root": (root, None),
    }[what]


@pytest.mark.parametrize("what", ["a DICOM slice", "a Ground PNG", "a DICOM folder", "a case folder",
                                  "the CT set folder", "the CHAOS root"])
def test_convert_with_unreadable(what: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = _raw(tmp_path)
    blocked, case = _convert_case(what, root)
    before = fingerprint([root])
    _deny(monkeypatch, blocked)
    out = tmp_path / "out"
    shown = blocked.name if case else str(blocked)
    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, names=[shown, "Permission denied"],
             line_start=f"FAILED {case}:" if case else None, sandbox=tmp_path, allowed=[out])
    monkeypatch.undo()
    assert fingerprint([root]) == before
    if case:  # the other case is converted
        assert [e["case"] for e in json.loads((out / "datalist.json").read_text())["training"]] == ["ct_2"]


def _volume(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(16, 16, 3)).astype(np.float32),
                             np.diag([6.0, 6.0, 5.0, 1.0])), path)
    return path


def _infer_outcome(input_path: Path, out: Path, bundle_root: Path, culprit: str) -> tuple[str, str]:
    try:
        with alarm(60):
            workflow = inference_workflow(input_path, out, bundle_root)
            workflow.initialize()
            workflow.run()
        error: BaseException | None = None
    except Exception as e:  # noqa: BLE001 - classified below
        error = e
    found = first_exception_of(error, InvalidInputError) if error is not None else None
    if error is not None and (isinstance(error, Hang) or first_exception_of(error, Hang) is not None):
        return "hangs", str(error)
    if error is None:
        return "silent wrong", "no error"
    if found is None or culprit not in str(found) or "\n" in str(found).strip():
        return "escaped", f"{type(error).__name__}: {error}"
    if out.exists() and [p for p in out.rglob("*") if p.is_file()]:
        return "silent wrong", "a prediction was written"
    return "refused clearly", str(found)


@pytest.mark.parametrize("what", ["a NIfTI file", "a DICOM slice", "a DICOM series folder"])
def test_inference_with_unreadable(what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if what == "a NIfTI file":
        input_path = _volume(tmp_path / "in" / "scan.nii.gz")
        blocked = input_path
    else:
        dicom, _ = make_case_tree(tmp_path / "raw", n=4, ground=False)
        input_path = dicom
        blocked = dicom / "s3.dcm" if what == "a DICOM slice" else dicom
    before = fingerprint([input_path])
    _deny(monkeypatch, blocked)
    outcome, detail = _infer_outcome(input_path, tmp_path / "pred", tmp_path, blocked.name)
    monkeypatch.undo()
    if fingerprint([input_path]) != before:
        outcome = "data loss"
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


def test_evaluate_with_unreadable_ground(tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    labels = np.zeros((16, 16, 3), np.uint8)
    labels[3:9, 4:10] = 1
    for name in ("ground", "pred"):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / f"{name}.nii.gz")
    _deny(monkeypatch, tmp_path / "ground.nii.gz")
    run_case(CATEGORY, ["evaluate", "--ground", tmp_path / "ground.nii.gz", "--pred", tmp_path / "pred.nii.gz",
                        "--spacing", "1", "1", "1"], capsys, names=["ground.nii.gz", "Permission denied"])


# ---------------------------------------------------------------------------------------------------------------
# FIFOs where a file is expected


def test_fifo_named_datalist_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.mkfifo(tmp_path / "datalist.json")
    (tmp_path / "preds").mkdir()
    run_case(CATEGORY, ["evaluate", "--datalist", tmp_path / "datalist.json", "--pred", tmp_path / "preds"], capsys,
             names=["datalist.json", "not a regular file"], timeout=20)


def test_fifo_as_output_marker(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / ".scse_monai_output.json")
    run_case(CATEGORY, ["demo", "--quick", "--out", out, "--quiet"], capsys,
             names=[".scse_monai_output.json", "not a regular file"], timeout=20)


@pytest.mark.parametrize("where", ["--dicom", "--ground"])
def test_fifo_slice_in_evaluate(where: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dicom, ground = make_case_tree(tmp_path / "raw", n=4)
    fifo = dicom / "s9.dcm" if where == "--dicom" else ground / "g9.png"
    os.mkfifo(fifo)
    run_case(CATEGORY, ["evaluate", "--ground", ground, "--pred", ground, "--dicom", dicom], capsys,
             names=[fifo.name, "not a regular file"], timeout=20)


# ---------------------------------------------------------------------------------------------------------------
# a JPEG 2000 slice where pydicom has no decoder


def _jpeg2000_slice(dicom: Path) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    path = dicom / "s2.dcm"
    ds = read_dataset(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(200)])
    ds["PixelData"].VR = "OB"
    write_dicom(path, ds)
    return path


@pytest.fixture
def no_jpeg2000_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom with only its uncompressed-data handler, as without pylibjpeg/GDCM/Pillow's JPEG 2000."""
    import pydicom.config
    from pydicom.pixel_data_handlers import numpy_handler

    monkeypatch.setattr(pydicom.config, "pixel_data_handlers", [numpy_handler])


def test_jpeg2000_slice_in_convert(tmp_path: Path, capsys: pytest.CaptureFixture, no_jpeg2000_decoder) -> None:
    root = _raw(tmp_path)
    culprit = _jpeg2000_slice(root / "Train_Sets" / "CT" / "1" / "DICOM_anon")
    out = tmp_path / "out"
    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, names=[culprit.name, "decode"],
             line_start="FAILED ct_1:", protect=[root], sandbox=tmp_path, allowed=[out])


def test_jpeg2000_slice_in_inference(tmp_path: Path, no_jpeg2000_decoder) -> None:
    dicom, _ = make_case_tree(tmp_path / "raw", n=4, ground=False)
    culprit = _jpeg2000_slice(dicom)
    outcome, detail = _infer_outcome(dicom, tmp_path / "pred", tmp_path, culprit.name)
    record(CATEGORY, outcome)
    assert outcome == "refused clearly", detail


# ---------------------------------------------------------------------------------------------------------------
# Unicode digits in slice names: not digits of the natural order (int() would fail on some), sorted as text,
# the DICOM and Ground files alike, so slices and masks still pair up


@pytest.mark.parametrize("digit", ["\u0663", "\u00b3", "\U0001d7db", "\u2463"])  # Arabic-Indic 3, ³, 𝟛, ④
def test_unicode_digit_in_slice_names(digit: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _raw(tmp_path, n_cases=1)
    dicom = root / "Train_Sets" / "CT" / "1" / "DICOM_anon"
    ground = dicom.parent / "Ground"
    (dicom / "s3.dcm").rename(dicom / f"s{digit}.dcm")
    (ground / "g3.png").rename(ground / f"g{digit}.png")
    from scse_monai.data.dicom import list_slices

    files = list_slices(dicom)
    out = tmp_path / "out"

    def check() -> bool:
        image = nib.load(out / "imagesTr" / "ct_1.nii.gz").get_fdata()
        label = nib.load(out / "labelsTr" / "ct_1.nii.gz").get_fdata()
        pngs = list_slices(ground, ".png")
        from PIL import Image

        for k, (f, g) in enumerate(zip(files, pngs, strict=True)):
            ds = read_dataset(f)
            if not np.allclose(image[:, :, k].T, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)):
                return False
            if f.stem[1:] != g.stem[1:]:  # the slice and the mask of one name pair up
                return False
            mask = np.asarray(Image.open(g)) > 0
            if not np.array_equal(label[:, :, k].T > 0, mask):
                return False
        return image.shape[2] == 4

    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, protect=[root], expect="correct result",
             check=check)


def test_unicode_digit_in_inference(tmp_path: Path) -> None:
    dicom, _ = make_case_tree(tmp_path / "raw", n=4, ground=False)
    (dicom / "s3.dcm").rename(dicom / "s\u0663.dcm")
    out = tmp_path / "pred"
    outcome, detail = _infer_outcome(dicom, out, tmp_path, "-")
    preds = sorted(out.rglob("*.nii.gz")) if out.exists() else []
    if outcome == "silent wrong" and detail == "no error":
        ok = len(preds) == 1 and nib.load(preds[0]).shape[:3] == (10, 12, 4)
        outcome, detail = ("correct result", "") if ok else ("silent wrong", f"predictions {preds}")
    record(CATEGORY, outcome)
    assert outcome == "correct result", detail


# ---------------------------------------------------------------------------------------------------------------
# the output folder is the CHAOS root (as given, with a trailing slash, through a symlink) or one of its sets


@pytest.mark.parametrize("how", ["the root", "the root with a slash", "a symlink to the root", "its Train_Sets",
                                 "its CT set"])
def test_convert_output_is_the_chaos_root(how: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _raw(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(root, target_is_directory=True)
    out = {"the root": root, "the root with a slash": f"{root}/", "a symlink to the root": link,
           "its Train_Sets": root / "Train_Sets", "its CT set": root / "Train_Sets" / "CT"}[how]
    run_case(CATEGORY, ["convert", root, out, "--quiet"], capsys, names=[str(Path(out)), "input"],
             protect=[root], sandbox=tmp_path)
