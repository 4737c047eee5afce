"""Peak resident memory of the bundle's 2D network run slice-wise over a volume.

Run as a script, one depth per process: ``python memory_probe.py DEPTH SIZE [SW_BATCH]`` prints one JSON line.
Linux only: the high-water mark is reset with ``/proc/self/clear_refs`` (value 5) after the network is built and
warmed up, and read from ``VmHWM`` in ``/proc/self/status``, so the figure is what inference itself adds. For stable
figures run it with ``MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 OMP_NUM_THREADS=1`` (see
``test_memory_bounds.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.inferers import SliceInferer

CONFIG = Path(__file__).resolve().parents[2] / "bundle" / "configs" / "inference.json"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(depth: int, size: int, sw_batch_size: int | None = None) -> dict:
    """Peak memory (bytes) added by slice-wise inference of a ``size x size x depth`` volume."""
    torch.set_num_threads(1)
    parser = ConfigParser()
    parser.read_config(str(CONFIG))
    net = parser.get_parsed_content("network_def").eval()
    num_classes = int(parser.get_parsed_content("num_classes"))
    sw = int(sw_batch_size or parser.get_parsed_content("sw_batch_size"))
    inferer = SliceInferer(roi_size=(size, size), sw_batch_size=sw, spatial_dim=2, progress=False)
    with torch.no_grad():
        inferer(torch.rand(1, 1, size, size, sw), net)  # warm-up: one-off allocations of the kernels
    x = torch.rand(1, 1, size, size, depth)
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS") * 1024
    with torch.no_grad():
        y = inferer(x, net)
    peak = _status_kib("VmHWM") * 1024
    assert tuple(y.shape) == (1, num_classes, size, size, depth)
    return {"depth": depth, "size": size, "sw_batch_size": sw, "added_peak_bytes": peak - base,
            "output_bytes": y.numel() * y.element_size(), "input_bytes": x.numel() * x.element_size()}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(measure(*args)))
