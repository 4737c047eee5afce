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
