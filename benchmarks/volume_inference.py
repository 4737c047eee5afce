"""Time and memory to segment a CT-sized volume (512 x 512 x 90) through the bundle's inference path on CPU.

The bundle's ``bundle/configs/inference.json`` is parsed with :class:`monai.bundle.ConfigParser` and its ``inferer``
(a :class:`monai.inferers.SliceInferer` over 2D windows, ``sw_batch_size`` windows per network call) runs its
``network_def`` (random weights, eval mode, ``torch.no_grad``) on a synthetic CT-like volume that is already
intensity-normalised (the ``ct_window`` mapped to [0, 1]). The pre-processing (loading, re-orientation, resampling
to ``pixdim``) and post-processing (inversion, saving) are not timed: the volume is fed at 512 x 512 in-plane, i.e.
without the resampling to 1.5 mm that would usually shrink it, so this is the network-bound worst case.
Without ``inference.json`` the same is done with ``SliceInferer(roi_size=(256, 256), sw_batch_size=16,
spatial_dim=2)`` and :data:`_common.DEFAULT_NETWORK`.

Peak memory: as in ``se_overhead.py`` (see ``_common.py``), peak resident set size during the inference minus the
resident set size just before it (network and input volume already live), with glibc's mmap threshold fixed; the
script re-executes itself once to set that environment variable at process start.

Usage::

    python benchmarks/volume_inference.py [--quick] [--json FILE] [--se {bundle,none}]

``--quick``: a 64 x 64 x 4 volume, 32 x 32 windows and a tiny network, for the test suite. ``--se none`` runs the
same network without SE (MONAI's UNet) for comparison. JSON keys: ``seconds``, ``slices_per_second``,
``peak_memory_mb`` (the step's peak, MiB), ``peak_rss_mb`` (the process's peak, MiB), plus the set-up.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_NETWORK,
    bundle_config_path,
    check_finite,
    machine_info,
    memory_env,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    write_json,
)

__all__ = ["main", "REQUIRED_KEYS", "synthetic_ct"]

REQUIRED_KEYS = ["seconds", "slices_per_second", "peak_memory_mb", "peak_rss_mb"]
FULL = {"shape": (512, 512, 90), "roi_size": None, "sw_batch_size": None, "overrides": {}}
QUICK = {
    "shape": (64, 64, 4),
    "roi_size": [32, 32],
    "sw_batch_size": 4,
    "overrides": {"channels": [8, 16, 32, 64], "strides": [2, 2, 2]},
}


def synthetic_ct(shape: tuple[int, int, int], window: tuple[float, float] = (-175.0, 250.0)) -> torch.Tensor:
    """A (1, 1, H, W, D) CT-like volume, normalised like the bundle: HU clipped to ``window`` and mapped to [0, 1].

    Air (-1000 HU) around an elliptic body of soft tissue (40 HU) with a brighter organ (60 HU) and a spine-like
    bone (700 HU), plus Gaussian noise (20 HU); only the value range and texture matter for timing.
    """
    gen = torch.Generator().manual_seed(0)
    h, w, d = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    hu = torch.full((h, w), -1000.0)
    hu[(xx / 0.85) ** 2 + (yy / 0.65) ** 2 <= 1] = 40.0
    hu[((xx + 0.3) / 0.3) ** 2 + ((yy + 0.1) / 0.25) ** 2 <= 1] = 60.0
    hu[(xx / 0.08) ** 2 + ((yy - 0.45) / 0.08) ** 2 <= 1] = 700.0
    vol = hu[..., None].expand(h, w, d) + 20.0 * torch.randn(h, w, d, generator=gen)
    lo, hi = window
    return ((vol.clamp(lo, hi) - lo) / (hi - lo))[None, None].contiguous()


def _build(quick: bool, se: str) -> tuple[torch.nn.Module, Any, dict[str, Any], str]:
    """The network and the inferer of the bundle's inference config (or the documented fallback)."""
    mode = QUICK if quick else FULL
    path = bundle_config_path("inference.json")
    torch.manual_seed(0)
    if path.is_file():
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(str(path))
        if mode["roi_size"] is not None:
            parser["roi_size"] = mode["roi_size"]
        if mode["sw_batch_size"] is not None:
            parser["sw_batch_size"] = mode["sw_batch_size"]
        for key, value in mode["overrides"].items():
            parser[f"network_def::{key}"] = value
        if se == "none":
            parser["network_def::se"] = None
        parser["inferer::progress"] = not quick
        net = parser.get_parsed_content("network_def", lazy=False)
        inferer = parser.get_parsed_content("inferer", lazy=False)
        window = parser.get_parsed_content("ct_window") if "ct_window" in parser.get() else [-175, 250]
        setup = {"ct_window": list(window)}
        source = str(path.relative_to(path.parents[2]))
    else:
        from monai.inferers import SliceInferer

        from scse_monai.networks.nets import SEUNet

        kwargs = {k: v for k, v in DEFAULT_NETWORK.items() if k != "_target_"}
        kwargs.update(mode["overrides"])
        if se == "none":
            kwargs["se"] = None
        net = SEUNet(**kwargs)
        inferer = SliceInferer(
            roi_size=mode["roi_size"] or (256, 256),
            sw_batch_size=mode["sw_batch_size"] or 16,
            spatial_dim=2,
            progress=not quick,
        )
        setup = {"ct_window": [-175, 250]}
        source = "built-in default (no bundle/configs/inference.json)"
    setup.update(
        {
            "roi_size": list(inferer.roi_size),
            "sw_batch_size": int(inferer.sw_batch_size),
            "overlap": inferer.overlap,
            "inferer": type(inferer).__name__,
        }
    )
    return net.eval(), inferer, setup, source


def run(quick: bool = False, se: str = "bundle") -> dict[str, Any]:
    """Segment the synthetic volume once after a one-slice warm-up; return the result dictionary."""
    mode = QUICK if quick else FULL
    net, inferer, setup, source = _build(quick, se)
    volume = synthetic_ct(mode["shape"], tuple(setup["ct_window"]))
    with torch.no_grad():
        inferer(volume[..., :1], net)  # warm-up: oneDNN primitives, lazy initialisations
    gc.collect()
    before = rss_bytes()
    exact = reset_peak_rss()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = inferer(volume, net)
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    slices = mode["shape"][2]
    mib = 1024.0**2
    result = {
        "mode": "quick" if quick else "full",
        "se": se,
        "config_source": source,
        "volume_shape": list(mode["shape"]),
        "output_shape": list(out.shape),
        **setup,
        "machine": machine_info(),
        "seconds": seconds,
        "slices_per_second": slices / seconds,
        "peak_memory_mb": (peak - before) / mib if exact else peak / mib,
        "peak_rss_mb": peak / mib,
        "memory_method": "VmHWM reset via /proc/self/clear_refs" if exact else "ru_maxrss (coarse, whole process)",
        "params": sum(p.numel() for p in net.parameters()),
    }
    check_finite(result, REQUIRED_KEYS)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != memory_env()["MALLOC_MMAP_THRESHOLD_"]:
        # glibc reads the threshold only at process start: run again with it set.
        return subprocess.call([sys.executable, str(Path(__file__).resolve()), *argv], env=memory_env())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny volume and network for the test suite")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON to this file")
    parser.add_argument("--se", choices=["bundle", "none"], default="bundle", help="the bundle's SE, or none (UNet)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, se=args.se)
    print(
        f"{result['volume_shape']} volume via {result['inferer']} (roi {result['roi_size']}, sw_batch_size "
        f"{result['sw_batch_size']}, overlap {result['overlap']}), network from {result['config_source']}, "
        f"se={args.se}: {result['seconds']:.2f} s, {result['slices_per_second']:.2f} slices/s, peak memory "
        f"{result['peak_memory_mb']:.0f} MiB above the {(result['peak_rss_mb'] - result['peak_memory_mb']):.0f} "
        f"MiB already resident ({result['machine']['threads']} threads, load average "
        f"{result['machine']['loadavg'][0] if result['machine']['loadavg'] else 'n/a'})"
    )
    if args.json is not None:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
