from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from scse_monai.utils.io import atomic_path, atomic_save_nifti, atomic_torch_save, atomic_write_text


def test_write_text_and_no_leftovers(tmp_path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_failure_leaves_previous_file_untouched(tmp_path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half-written")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_nifti_keeps_compression_and_round_trips(tmp_path) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    target = tmp_path / "x.nii.gz"
    atomic_save_nifti(nib.Nifti1Image(data, affine), target)
    assert target.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic: the temp name kept the .nii.gz suffix
    loaded = nib.load(target)
    np.testing.assert_array_equal(np.asarray(loaded.dataobj), data)
    np.testing.assert_allclose(loaded.affine, affine, rtol=1e-6)  # NIfTI stores the affine as float32


def test_torch_save_loads_weights_only(tmp_path) -> None:
    state = {"w": torch.randn(3, 3), "epoch": 4}
    atomic_torch_save(state, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["epoch"] == 4


def test_permissions_follow_umask(tmp_path) -> None:
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
        plain = tmp_path / "plain.md"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_dead_runs_temporaries_are_removed(tmp_path) -> None:
    import os

    from scse_monai.utils.io import remove_stale_temporaries

    target = tmp_path / "scores.json"
    mine = tmp_path / f".scores.json.{os.getpid()}.abc.tmp.json"
    dead = tmp_path / f".scores.json.{_dead_pid()}.def.tmp.json"
    legacy = tmp_path / ".scores.json.ghi.tmp.json"  # written before temporaries carried a pid
    other = tmp_path / f".other.json.{_dead_pid()}.jkl.tmp.json"
    for p in (mine, dead, legacy, other):
        p.write_text("x")
    assert sorted(remove_stale_temporaries([target])) == sorted([dead, legacy])
    assert mine.exists() and other.exists()
    atomic_write_text(target, "{}")  # an atomic write cleans its own target's dead temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, "scores.json"])


def test_failed_write_names_the_target_not_the_temporary(tmp_path, monkeypatch) -> None:
    import errno
    import pathlib

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "datalist.json", "{}")
    assert info.value.filename == str(tmp_path / "datalist.json") and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_output_lock_refuses_a_second_holder(tmp_path) -> None:
    from scse_monai.errors import InvalidInputError
    from scse_monai.utils.io import output_lock

    with output_lock(tmp_path / "out", "convert"):
        with pytest.raises(InvalidInputError, match="another convert run"), output_lock(tmp_path / "out", "convert"):
            pass
    with output_lock(tmp_path / "out", "convert"):  # released
        pass
    assert list((tmp_path / "out").iterdir()) == []  # no lock file in the output


@pytest.mark.parametrize("value,ok", [("ct_1", True), (7, True), ("../x", False), ("a/b", False), ("..", False),
                                      (".hidden", False), ("", False), (None, False), (True, False), ("a\\b", False)])
def test_check_safe_name(value, ok) -> None:
    from scse_monai.errors import InvalidInputError
    from scse_monai.utils.io import check_safe_name

    if ok:
        assert check_safe_name(value, "case") == str(value)
    else:
        with pytest.raises(InvalidInputError, match="not a safe file name"):
            check_safe_name(value, "case", "datalist.json")


def test_check_output_path(tmp_path) -> None:
    from scse_monai.errors import InvalidInputError
    from scse_monai.utils.io import check_output_path

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "g.nii.gz").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "in")
    for out in (tmp_path / "in", tmp_path / "in" / "sub" / "o.json", tmp_path / "link" / "o.json"):
        with pytest.raises(InvalidInputError, match="the input --ground"):
            check_output_path(out, {"--ground": tmp_path / "in"})
    with pytest.raises(InvalidInputError, match="output is the input --ground"):
        check_output_path(tmp_path / "in" / "g.nii.gz", {"--ground": tmp_path / "in" / "g.nii.gz"})
    with pytest.raises(InvalidInputError, match="existing folder"):
        check_output_path(tmp_path / "in", {})
    assert check_output_path(tmp_path / "o.json", {"--ground": tmp_path / "in"}) == tmp_path / "o.json"
