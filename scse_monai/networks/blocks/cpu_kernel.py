"""Build and load the fused max-out scSE CPU kernel (``csrc/scse_max_cpu.c``) with the system C compiler.

Why a kernel of our own: under ``torch.compile`` inductor generates the max-out's loops itself, and on CPU those
loops re-read the block's input several times and transpose between layouts (``docs/performance.md``); the kernel
reads x once per pass, in whichever of the two layouts the graph keeps it, and its backward writes dL/dx in one
pass. It is plain C (no PyTorch headers, so it builds in about a second) called through :mod:`ctypes`, which
releases the GIL; threads are OpenMP's, from the same libgomp PyTorch loads.

The shared library is built on first use into a per-user cache, ``$SCSE_MONAI_CACHE_DIR`` or
``$XDG_CACHE_HOME/scse_monai`` (default ``~/.cache/scse_monai``), under a name that hashes the source, the compiler,
its flags and this CPU's instruction-set flags (``-march=native``), written to a temporary file and renamed into
place (atomic; concurrent builds are harmless). Without a working C compiler, or with ``SCSE_MONAI_CPU_KERNEL=0``,
:func:`load` returns ``None`` (with one warning for a failed build) and callers keep their pure-PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import torch

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_DISABLE",
    "Layout",
    "as_layout",
    "cache_dir",
    "chunk",
    "dense_like",
    "dense_strides",
    "kind_of",
    "layout",
    "load",
    "work_items",
]

#: Environment variable naming the folder the kernel is built into.
ENV_CACHE_DIR = "SCSE_MONAI_CACHE_DIR"
#: Set it to ``0`` to never build or use the kernel.
ENV_DISABLE = "SCSE_MONAI_CPU_KERNEL"

_SOURCE = "scse_max_cpu.c"
_FLAGS = ("-O3", "-fno-trapping-math", "-fPIC", "-shared")  # -fno-trapping-math: lets gcc vectorise the selects
_OPTIONAL_FLAGS = (("-march=native",), ("-fopenmp",))  # dropped one by one where the compiler refuses them

_P, _I = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {
    "scse_fwd_nchw": [_P, _I, _I, _P, _P, _P, _P, _I, _I, _I, _I, ctypes.c_int],
    "scse_fwd_nhwc": [_P, _I, _I, _P, _P, _P, _P, _I, _I, _I, _I, ctypes.c_int],
    "scse_bwd_nchw": [_P, _I, _I, _P, _P, _P, _P, _I, _I, _P, _P, _P, _P, _I, _I, _I, _I, ctypes.c_int],
    "scse_bwd_nhwc": [_P, _I, _I, _P, _P, _P, _P, _I, _I, _P, _P, _P, _P, _I, _I, _I, _I, ctypes.c_int],
}


def cache_dir() -> Path:
    """The folder the kernel is built into (see the module docstring)."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scse_monai"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _compile(cc: str, source: Path, target: Path) -> tuple[str, ...]:
    """Compile ``source`` into ``target`` (atomically); returns the flags used. Raises ``RuntimeError``."""
    errors = []
    optional = list(_OPTIONAL_FLAGS)
    while True:
        flags = (*_FLAGS, *[f for group in optional for f in group])
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [cc, *flags, str(source), "-o", tmp, "-lm"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            os.replace(tmp, target)
            return flags
        os.unlink(tmp)
        errors.append(f"{' '.join(cmd)}: {result.stderr.strip()[-500:]}")
        if not optional:
            raise RuntimeError("\n".join(errors))
        optional.pop(0)


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    """The kernel library, built on first use; ``None`` when disabled or when no C compiler can build it."""
    if os.environ.get(ENV_DISABLE, "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        return None
    source = resources.files("scse_monai.networks.blocks") / "csrc" / _SOURCE
    try:
        with resources.as_file(source) as src:
            version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
            key = hashlib.sha256(
                "\0".join([src.read_text(), cc, version, repr(_FLAGS + _OPTIONAL_FLAGS), _cpu_flags()]).encode()
            ).hexdigest()[:20]
            folder = cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"scse_max_cpu-{key}.so"
            if not target.exists():
                _compile(cc, src, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            f"scse_monai: could not build the fused scSE CPU kernel ({err}); torch.compile keeps the generated-code "
            f"path. Set {ENV_DISABLE}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
    return lib


class Layout:
    """How the kernel sees a (B, C, *S) tensor: ``kind`` ``"nchw"`` or ``"nhwc"``, the batch stride and the other one.

    ``"nchw"``: spatial dims flatten to one contiguous axis, any channel stride; ``"nhwc"``: unit channel stride and
    spatial dims that flatten to one pixel stride (channels-last, or a channel slice of a channels-last tensor).
    """

    def __init__(self, kind: str, batch_stride: int, stride: int) -> None:
        self.kind, self.batch_stride, self.stride = kind, batch_stride, stride


def _flattens(t: torch.Tensor, step: int) -> bool:
    """Whether ``t``'s spatial dims flatten to one axis of stride ``step``."""
    expected = step
    for size, stride in zip(reversed(t.shape[2:]), reversed(t.stride()[2:]), strict=True):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def layout(t: torch.Tensor) -> Layout | None:
    """``t``'s :class:`Layout`, or ``None`` when the kernel cannot read it without a copy."""
    if t.ndim >= 4 and t.stride(1) == 1 and t.shape[-1] > 1 and t.stride(-1) >= t.shape[1] > 1:
        if _flattens(t, t.stride(-1)):
            return Layout("nhwc", t.stride(0), t.stride(-1))
    if _flattens(t, 1):
        return Layout("nchw", t.stride(0), t.stride(1))
    return None


def kind_of(t: torch.Tensor) -> str:
    """The layout kind the kernel works in for ``t``: its own (:func:`layout`), else ``"nchw"`` (after a copy)."""
    found = layout(t)
    return "nchw" if found is None else found.kind


def dense_strides(shape: torch.Size | tuple[int, ...], kind: str) -> tuple[int, ...]:
    """The strides of a dense tensor of ``shape`` in ``kind`` (``"nchw"``: contiguous; ``"nhwc"``: channels-last)."""
    strides, step = [0] * len(shape), 1
    order = range(len(shape) - 1, -1, -1) if kind == "nchw" else [1, *range(len(shape) - 1, 1, -1), 0]
    for i in order:
        strides[i] = step
        step *= shape[i]
    return tuple(strides)


def dense_like(x: torch.Tensor, kind: str | None = None) -> torch.Tensor:
    """An uninitialised tensor of ``x``'s shape, dense in ``kind`` (default: :func:`kind_of` ``x``)."""
    strides = dense_strides(x.shape, kind_of(x) if kind is None else kind)
    return torch.empty_strided(x.shape, strides, dtype=x.dtype, device=x.device)


def as_layout(t: torch.Tensor, kind: str) -> tuple[torch.Tensor, Layout]:
    """``t`` itself when the kernel reads it as ``kind``, else a dense copy in ``kind``; with its :class:`Layout`."""
    found = layout(t)
    if found is None or found.kind != kind:
        t = dense_like(t, kind).copy_(t)
        found = layout(t)
        assert found is not None and found.kind == kind
    return t, found


def chunk(kind: str, channels: int, pixels: int) -> int:
    """Pixels per work item: a few hundred KiB of x, so that a work item's passes over it hit the cache."""
    if kind == "nhwc":
        return max(1, min(pixels, 16384 // channels))
    return max(64, min(pixels, 4096, 65536 // channels))


def work_items(x: torch.Tensor, kind: str) -> int:
    """How many work items (partial sums) the kernel splits ``x`` into."""
    channels, pixels = x.shape[1], math.prod(x.shape[2:])
    return x.shape[0] * -(-pixels // chunk(kind, channels, pixels))
