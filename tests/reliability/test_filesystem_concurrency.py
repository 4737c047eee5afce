"""Corpus: filesystem conditions, concurrent runs into one output folder, and runs killed by a signal.

The tests run as root in CI containers, where permission bits do not stop reads; unreadable folders are therefore
simulated by making ``Path.iterdir`` raise ``PermissionError`` for them. A full disk is simulated at the write
itself. Concurrency uses real processes; kills are real SIGTERMs sent while a write is in progress (a wrapper slows
the write down so that the signal lands inside it).
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scse_monai.apps.chaos.convert import convert_chaos
from scse_monai.utils.io import output_lock

from .corpus import fingerprint, record, run_case
from .reliability_data import make_case_tree

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _raw(tmp_path: Path, n_cases: int = 2, n: int = 4) -> Path:
    root = tmp_path / "raw"
    for k in range(n_cases):
        make_case_tree(root, n=n, case_id=str(k + 1), seed=k)
    return root


def _unreadable(monkeypatch: pytest.MonkeyPatch, blocked: Path) -> Path:
    """Make listing ``blocked`` fail as a folder without read permission does (root ignores permission bits)."""
    real = pathlib.Path.iterdir

    def iterdir(self):
        if self == blocked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    return blocked


def _hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")] if folder.exists() else []


# ---------------------------------------------------------------------------------------------------------------
# filesystem conditions


def test_unreadable_case_folder_fails_only_that_case(tmp_path: Path, capsys, monkeypatch) -> None:
    root = _raw(tmp_path)
    blocked = _unreadable(monkeypatch, root / "Train_Sets" / "CT" / "1" / "DICOM_anon")
    out = tmp_path / "out"
    run_case("filesystem conditions", ["convert", root, out, "--quiet"], capsys, names=[str(blocked), "Permission"],
             protect=[root], line_start="FAILED ct_1:")
    assert [e["case"] for e in json.loads((out / "datalist.json").read_text())["training"]] == ["ct_2"]


def test_unreadable_set_folder_is_one_clear_error(tmp_path: Path, capsys, monkeypatch) -> None:
    root = _raw(tmp_path)
    blocked = _unreadable(monkeypatch, root / "Train_Sets" / "CT")
    run_case("filesystem conditions", ["convert", root, tmp_path / "out", "--quiet"], capsys, names=[str(blocked)],
             protect=[root])


@pytest.mark.parametrize("where", ["dicom", "ground"])
def test_fifo_among_the_slices_does_not_hang(tmp_path: Path, capsys, where: str) -> None:
    root = _raw(tmp_path)
    dicom_dir = root / "Train_Sets" / "CT" / "1" / "DICOM_anon"
    fifo = dicom_dir / "s9.dcm" if where == "dicom" else dicom_dir.parent / "Ground" / "g9.png"
    os.mkfifo(fifo)
    run_case("filesystem conditions", ["convert", root, tmp_path / "out", "--quiet"], capsys,
             names=[fifo.name, "not a regular file"], line_start="FAILED ct_1:", timeout=30)


def test_broken_symlink_slice(tmp_path: Path, capsys) -> None:
    root = _raw(tmp_path)
    link = root / "Train_Sets" / "CT" / "1" / "DICOM_anon" / "s9.dcm"
    link.symlink_to(tmp_path / "nowhere.dcm")
    run_case("filesystem conditions", ["convert", root, tmp_path / "out", "--quiet"], capsys, names=["s9.dcm"],
             line_start="FAILED ct_1:")


def test_disk_full_while_writing_the_datalist(tmp_path: Path, capsys, monkeypatch) -> None:
    root = _raw(tmp_path)
    out = tmp_path / "out"
    convert_chaos(root, out, progress=False)
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".datalist.json."):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    run_case("filesystem conditions", ["convert", root, out, "--quiet", "--overwrite"], capsys,
             names=["datalist.json", "No space left"], protect=[out / "datalist.json"])
    assert not _hidden(out)


def test_disk_full_while_overwriting_a_case_keeps_its_earlier_files(tmp_path: Path, capsys, monkeypatch) -> None:
    """--overwrite meets a full disk writing ct_1's image: its old label, image and record stay a matching set."""
    import scse_monai.apps.chaos.convert as convert_module

    root = _raw(tmp_path)
    out = tmp_path / "out"
    convert_chaos(root, out, progress=False)
    real = convert_module._save_nifti

    def full(image, path):
        if path.name.startswith(".ct_1.nii.gz.") and path.parent.name == "imagesTr":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(image, path)

    monkeypatch.setattr(convert_module, "_save_nifti", full)
    case_files = [out / "imagesTr" / "ct_1.nii.gz", out / "labelsTr" / "ct_1.nii.gz", out / "meta" / "train_ct_1.json"]
    run_case("filesystem conditions", ["convert", root, out, "--quiet", "--overwrite"], capsys,
             names=["imagesTr/ct_1.nii.gz", "No space left"], protect=case_files, line_start="FAILED ct_1:")
    assert not _hidden(out)


@pytest.mark.parametrize("damage", ["[1, 2]", '{"entry": 5}', '{"entry": {"case": "ct_1"', "", '{"entry": {}}'])
def test_damaged_sidecar_of_an_earlier_run(tmp_path: Path, capsys, damage: str) -> None:
    root = _raw(tmp_path)
    out = tmp_path / "out"
    convert_chaos(root, out, progress=False)
    first = json.loads((out / "datalist.json").read_text())
    (out / "meta" / "train_ct_1.json").write_text(damage)

    def check() -> bool:
        return json.loads((out / "datalist.json").read_text()) == first

    run_case("filesystem conditions", ["convert", root, out, "--quiet"], capsys, check=check,
             expect="correct result")


def test_evaluate_json_below_a_file(tmp_path: Path, capsys) -> None:
    label = tmp_path / "g.nii.gz"
    data = np.zeros((4, 4, 3), np.uint8)
    data[1:3, 1:3, 1] = 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), label)
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "scores.json"
    run_case("filesystem conditions", ["evaluate", "--ground", label, "--pred", label, "--json", out], capsys,
             names=["afile"], protect=[tmp_path / "afile", label])


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--seed", str(2**33)], ["--folds", "0"], ["--workers", "0"]])
def test_convert_bad_numbers(tmp_path: Path, capsys, argv: list[str]) -> None:
    root = _raw(tmp_path, n_cases=1)
    run_case("filesystem conditions", ["convert", root, tmp_path / "out", "--quiet", *argv], capsys,
             names=[argv[0]])


# ---------------------------------------------------------------------------------------------------------------
# concurrency


@pytest.mark.parametrize("command", ["convert", "export-submission"])
def test_second_run_into_a_locked_folder_is_refused(tmp_path: Path, capsys, command: str) -> None:
    root = _raw(tmp_path)
    data = tmp_path / "data"
    convert_chaos(root, data, progress=False)
    out = tmp_path / "out"
    if command == "convert":
        argv = ["convert", root, out, "--quiet"]
    else:
        preds = tmp_path / "preds"
        shutil.copytree(data / "labelsTr", preds)
        argv = ["export-submission", preds, data / "datalist.json", out, "--section", "training"]
    with output_lock(out, "other"):
        run_case("concurrency", argv, capsys, names=[str(out), "another"])


def test_live_temporary_of_another_run_is_kept(tmp_path: Path, capsys) -> None:
    root = _raw(tmp_path)
    out = tmp_path / "out"
    convert_chaos(root, out, progress=False)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / "imagesTr" / f".ct_1.nii.gz.{other.pid}.abcd1234.tmp.nii.gz"
        live.write_bytes(b"being written by another run")
        stale = out / "imagesTr" / f".ct_1.nii.gz.{_dead_pid()}.efgh5678.tmp.nii.gz"
        stale.write_bytes(b"left by a killed run")
        run_case("concurrency", ["convert", root, out, "--quiet", "--overwrite"], capsys, expect="correct result",
                 check=lambda: live.exists() and not stale.exists())
    finally:
        other.kill()
        other.wait()


def _cli(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "scse_monai", *map(str, args)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("command", ["convert", "export-submission"])
def test_two_real_runs_into_one_folder(tmp_path: Path, command: str) -> None:
    """Started together: each finishes, or is refused by the lock, or (when it gets the lock only after the other run
    finished) refuses to overwrite that run's results; the result is complete and temporaries-free."""
    root = _raw(tmp_path, n_cases=3, n=6)
    data = tmp_path / "data"
    out = tmp_path / "out"
    if command == "convert":
        argv = ["convert", root, out, "--quiet"]
    else:
        convert_chaos(root, data, progress=False)
        preds = tmp_path / "preds"
        shutil.copytree(data / "labelsTr", preds)
        argv = ["export-submission", preds, data / "datalist.json", out, "--section", "training"]
    procs = [_cli(*argv) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    refusals = ("another", "already holds")  # the lock, or the finished run's files (no --overwrite)
    ok = all(c == 0 or (c == 2 and any(r in err for r in refusals)) for c, (_, err) in zip(codes, results, strict=True))
    ok = ok and 0 in codes and not _hidden(out)
    if command == "convert":
        ok = ok and [e["case"] for e in json.loads((out / "datalist.json").read_text())["training"]] == [
            "ct_1", "ct_2", "ct_3"]
    else:
        ok = ok and len(list(out.rglob("*.png"))) == 18
    record("concurrency", "correct result" if ok else "silent wrong")
    assert ok, (codes, [r[1][-400:] for r in results])


# ---------------------------------------------------------------------------------------------------------------
# signals: SIGTERM inside a write, then the next run


_SLOW = """
import os, sys, time
target = os.environ["SLOW_TARGET"]
if target == "nifti":
    import nibabel
    _save = nibabel.save
    def slow(img, path, *a, **k):
        _save(img, path, *a, **k)
        if "imagesTr" in str(path):
            open(os.environ["SLOW_FLAG"], "w").close()
            time.sleep(60)
    nibabel.save = slow
else:
    from PIL import Image
    _save = Image.Image.save
    count = [0]
    def slow(self, *a, **k):
        _save(self, *a, **k)
        count[0] += 1
        if count[0] == 2:
            open(os.environ["SLOW_FLAG"], "w").close()
            time.sleep(60)
    Image.Image.save = slow
from scse_monai.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["convert", "export-submission"])
def test_sigterm_inside_a_write_then_next_run(tmp_path: Path, capsys, command: str) -> None:
    root = _raw(tmp_path)
    data, out, preds = tmp_path / "data", tmp_path / "out", tmp_path / "preds"
    if command == "convert":
        argv = ["convert", root, out, "--quiet"]
    else:
        convert_chaos(root, data, progress=False)
        shutil.copytree(data / "labelsTr", preds)
        argv = ["export-submission", preds, data / "datalist.json", out, "--section", "training"]
    flag = tmp_path / "writing"
    env = dict(os.environ, PYTHONPATH=str(REPO), SLOW_TARGET="nifti" if command == "convert" else "png",
               SLOW_FLAG=str(flag))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, *map(str, argv)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), "the slowed write was never reached"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert _hidden(out), "the kill should have left a temporary behind (else this test tests nothing)"

    def check() -> bool:
        if _hidden(out):
            return False
        if command == "convert":
            return len(json.loads((out / "datalist.json").read_text())["training"]) == 2
        return len(list(out.rglob("*.png"))) == 8

    run_case("signals", argv, capsys, expect="correct result", check=check)


def test_interrupted_replacement_is_restored(tmp_path: Path, capsys) -> None:
    """Killed between the two renames of --overwrite: the old Results come back, nothing is lost."""
    root = _raw(tmp_path)
    data, out, preds = tmp_path / "data", tmp_path / "out", tmp_path / "preds"
    convert_chaos(root, data, progress=False)
    shutil.copytree(data / "labelsTr", preds)
    argv = ["export-submission", preds, data / "datalist.json", out, "--section", "training"]
    run_case("signals", argv, capsys, expect="correct result", check=lambda: len(list(out.rglob("*.png"))) == 8)
    results = out / "CT" / "1" / "Results"
    before = {Path(k).name: v for k, v in fingerprint([results]).items()}
    results.rename(results.parent / f".Results.{_dead_pid()}.old.tmp")
    run_case("signals", argv, capsys, names=["--overwrite"])  # restored, then refused: it holds PNGs

    def check() -> bool:
        return {Path(k).name: v for k, v in fingerprint([results]).items()} == before and not _hidden(out)

    assert check()
    record("signals", "correct result")


def test_stale_temporaries_never_reach_a_submission(tmp_path: Path, capsys) -> None:
    root = _raw(tmp_path)
    data, out, preds = tmp_path / "data", tmp_path / "out", tmp_path / "preds"
    convert_chaos(root, data, progress=False)
    shutil.copytree(data / "labelsTr", preds)
    dead = _dead_pid()
    (out / "CT" / "1").mkdir(parents=True)
    (out / "CT" / "1" / f".Results.{dead}.k2j3h4.tmp").mkdir()
    (out / "CT" / "1" / f".Results.{dead}.k2j3h4.tmp" / "img000.png").write_bytes(b"partial")
    (out / f".scores.json.{dead}.zz9.tmp.json").write_text("{")
    argv = ["export-submission", preds, data / "datalist.json", out, "--section", "training"]
    run_case("signals", argv, capsys, expect="correct result",
             check=lambda: not _hidden(out) and len(list(out.rglob("*.png"))) == 8)
