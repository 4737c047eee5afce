"""Helpers shared by the benchmarks: the bundle's network definition, timing, peak memory, JSON output.

Peak memory on CPU
------------------
torch's CPU allocator keeps no statistics (``torch.cuda.max_memory_allocated`` has no CPU counterpart) and its
allocations bypass ``tracemalloc``. We therefore measure the process's resident set: Linux resets the peak resident
set size (``VmHWM`` in ``/proc/self/status``) to the current one when ``5`` is written to ``/proc/self/clear_refs``
(see ``man 5 proc``), so "peak RSS during the step minus RSS just before it" is the memory the step needed on top of
what was already live (weights, optimizer state, inputs). To make RSS follow torch's live tensors, glibc's malloc is
told to serve every allocation of 128 KiB or more by ``mmap`` (``MALLOC_MMAP_THRESHOLD_=131072``, which also turns
off glibc's dynamic threshold): a freed tensor is then unmapped at once instead of staying in the heap, and heap
fragmentation cannot inflate one variant's figure. The environment variable only acts at process start, which is
one reason every variant is measured in a fresh subprocess; the other is that each variant starts from the same
clean state. Where ``clear_refs`` cannot be written (not Linux), ``ru_maxrss`` of the fresh process is used instead,
which includes the set-up and is coarser; the JSON says which method was used.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "REPO_ROOT",
    "DEFAULT_NETWORK",
    "bundle_network_kwargs",
    "bundle_config_path",
    "build_network",
    "matmul_peak_gflops",
    "median_time",
    "rss_bytes",
    "reset_peak_rss",
    "peak_rss_bytes",
    "memory_env",
    "write_json",
    "machine_info",
    "check_finite",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The bundle's default network, used only when ``bundle/configs/train.json`` (``network_def``) cannot be read.
DEFAULT_NETWORK: dict[str, Any] = {
    "_target_": "scse_monai.networks.nets.SEUNet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 5,
    "channels": [32, 64, 128, 256, 512],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
    "se": "scse",
}


def bundle_config_path(name: str) -> Path:
    """``configs/<name>`` of the bundle of the installed package (a wheel's copy, or the clone's ``bundle/``)."""
    from scse_monai.bundle_paths import bundle_dir
    from scse_monai.errors import InvalidInputError

    try:
        return bundle_dir() / "configs" / name
    except InvalidInputError:  # no bundle at all: callers fall back to their built-in default
        return REPO_ROOT / "bundle" / "configs" / name


def bundle_network_kwargs(config: str = "train.json") -> tuple[dict[str, Any], str]:
    """The resolved ``network_def`` of a bundle config (references such as ``@num_classes`` substituted).

    Returns:
        ``(kwargs, source)``: the keyword arguments including ``_target_``, and where they came from (the config
        file, or ``"built-in default"`` when it is missing or has no ``network_def``).
    """
    path = bundle_config_path(config)
    if path.is_file():
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(str(path))
        if "network_def" in parser.get():
            raw = parser.get("network_def")
            resolved = {}
            for key in raw:
                value = parser.get_parsed_content(f"network_def::{key}", instantiate=False)
                resolved[key] = value
            return resolved, str(path)
    return dict(DEFAULT_NETWORK), "built-in default"


def build_network(kwargs: dict[str, Any], **overrides: Any) -> torch.nn.Module:
    """Instantiate a network definition (``_target_`` + kwargs) with ``overrides`` applied."""
    from monai.bundle import ConfigParser

    spec = {**kwargs, **overrides}
    parser = ConfigParser({"net": spec})
    return parser.get_parsed_content("net", lazy=False)


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 ``torch.mm`` throughput (GFLOP/s) with the current thread count: the practical compute limit.

    The median of ``repeats`` products of two n x n matrices (2 n^3 flops each) after one warm-up.
    """
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    seconds = median_time(lambda: torch.mm(a, b, out=out), repeats)
    return 2.0 * n**3 / seconds / 1e9


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size of this process (bytes; 0 where /proc is not available)."""
    kib = _status_kib("VmRSS")
    return 0 if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def peak_rss_bytes() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss` (else since process start), in bytes."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_env() -> dict[str, str]:
    """Environment for a memory-measuring subprocess (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # a timing run's settings
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    return env


def machine_info() -> dict[str, Any]:
    """Threads, versions and the load average (other users of the machine distort timings)."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": sys.platform,
        # glibc malloc settings change what fresh tensors cost (page faults; see docs/performance.md)
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        info["loadavg"] = None
    return info


def check_finite(result: dict[str, Any], keys: list[str]) -> None:
    """Raise ``ValueError`` when a required key is missing or not a finite number."""
    bad = [k for k in keys if not isinstance(result.get(k), (int, float)) or not math.isfinite(result[k])]
    if bad:
        raise ValueError(f"benchmark result has missing or non-finite values for: {', '.join(bad)}")


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``result`` as JSON atomically (``scse_monai.utils.io``)."""
    from scse_monai.utils.io import atomic_write_text

    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
