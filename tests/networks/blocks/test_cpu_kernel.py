"""Building, caching and loading the fused CPU kernel, and how it reads tensor layouts."""

from __future__ import annotations

import shutil

import pytest
import torch

from scse_monai.networks.blocks import cpu_kernel

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@pytest.fixture
def fresh_load(monkeypatch, tmp_path):
    """``cpu_kernel.load`` with an empty cache folder; the process's loaded kernel is restored afterwards."""
    monkeypatch.setenv(cpu_kernel.ENV_CACHE_DIR, str(tmp_path / "cache"))
    cpu_kernel.load.cache_clear()
    yield tmp_path / "cache"
    cpu_kernel.load.cache_clear()


@needs_compiler
def test_builds_once_into_the_cache_folder(fresh_load) -> None:
    assert cpu_kernel.load() is not None
    (built,) = fresh_load.glob("scse_max_cpu-*.so")
    assert not list(fresh_load.glob("*.tmp")) and len(list(fresh_load.iterdir())) == 1  # no temporary left behind
    stamp = built.stat().st_mtime_ns
    cpu_kernel.load.cache_clear()
    assert cpu_kernel.load() is not None
    assert built.stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_disabled_by_the_environment(fresh_load, monkeypatch) -> None:
    monkeypatch.setenv(cpu_kernel.ENV_DISABLE, "0")
    assert cpu_kernel.load() is None
    assert not fresh_load.exists()


def test_a_compiler_that_fails_gives_a_warning_and_no_kernel(fresh_load, monkeypatch) -> None:
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` program")
    monkeypatch.setenv("CC", false)
    with pytest.warns(RuntimeWarning, match="could not build the fused scSE CPU kernel"):
        assert cpu_kernel.load() is None
    assert not list(fresh_load.iterdir())  # nothing half-written left in the cache


@pytest.mark.parametrize(
    ("make", "kind", "strides"),
    [
        (lambda: torch.empty(2, 3, 4, 5), "nchw", (60, 20)),
        (lambda: torch.empty(2, 3, 4, 5).contiguous(memory_format=torch.channels_last), "nhwc", (60, 3)),
        (lambda: torch.empty(2, 8, 4, 5).contiguous(memory_format=torch.channels_last)[:, 2:5], "nhwc", (160, 8)),
        (lambda: torch.empty(2, 8, 4, 5)[:, 2:5], "nchw", (160, 20)),
        (lambda: torch.empty(2, 3, 4, 5, 6).contiguous(memory_format=torch.channels_last_3d), "nhwc", (360, 3)),
        (lambda: torch.empty(2, 3, 7), "nchw", (21, 7)),
        (lambda: torch.empty(2, 3, 4, 5).transpose(2, 3), None, None),
    ],
)
def test_layout(make, kind, strides) -> None:
    found = cpu_kernel.layout(make())
    if kind is None:
        assert found is None
    else:
        assert (found.kind, found.batch_stride, found.stride) == (kind, *strides)


@pytest.mark.parametrize("kind", ["nchw", "nhwc"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 4, 5, 6)])
def test_dense_like_and_as_layout(shape, kind) -> None:
    x = torch.randn(shape)
    dense = cpu_kernel.dense_like(x, kind)
    assert dense.shape == x.shape and cpu_kernel.layout(dense).kind == kind
    assert not dense.is_contiguous() if kind == "nhwc" else dense.is_contiguous()
    copy, found = cpu_kernel.as_layout(x, kind)
    assert found.kind == kind and torch.equal(copy, x)
    same, _ = cpu_kernel.as_layout(copy, kind)
    assert same is copy  # already readable: no copy


def test_operator_without_the_kernel_is_a_clear_error(fresh_load, monkeypatch) -> None:
    from scse_monai.networks.blocks import fused_cpu

    monkeypatch.setenv(cpu_kernel.ENV_DISABLE, "0")
    x = torch.randn(1, 2, 3, 4)
    assert not fused_cpu.usable(x, torch.rand(1, 2, 1, 1), torch.randn(1, 2, 1, 1), torch.randn(1))
    with pytest.raises(RuntimeError, match="fused scSE CPU kernel is not available"):
        torch.ops.scse_monai.scse_max_out(x, torch.rand(1, 2, 1, 1), torch.randn(1, 2, 1, 1), torch.randn(1), x.clone())
