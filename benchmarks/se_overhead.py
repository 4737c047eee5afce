"""What scSE costs on top of MONAI's UNet: training-step time, peak memory, inference time, parameters, FLOPs.

Three variants of the bundle's default network (``network_def`` of ``bundle/configs/train.json``, else
:data:`_common.DEFAULT_NETWORK`) are built with the same seed:

- ``unet``: ``SEUNet(se=None)``, i.e. exactly :class:`monai.networks.nets.UNet`;
- ``naive``: the bundle's scSE with ``memory_efficient=False``, the straightforward max-out
  ``torch.maximum(x * g_c, x * g_s)`` (kept here as the reference);
- ``scse``: the bundle's scSE as shipped (``memory_efficient=True``,
  :func:`scse_monai.networks.blocks.maxout_recalibrate`).

Measured in one run, on the same inputs:

- training step (forward, the bundle's DiceCE loss, backward, Adam step) and inference (eval mode, ``torch.no_grad``)
  times: after a warm-up, the variants are run interleaved (the order rotates every repetition) and the median of
  the repetitions is reported, so that a slow phase of a shared machine hits all variants alike;
- peak memory of a training step, each variant in a fresh subprocess: peak resident set size during one step minus
  the resident set size just before it (weights, gradients from the warm-up and Adam state are already live), with
  glibc's mmap threshold fixed so that freed tensors leave the resident set at once (see ``_common.py``); plus the
  bytes of the tensors autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``, unique storages), an
  allocator-independent view of the same thing;
- parameters, FLOPs of one inference batch and of one training step (``torch.utils.flop_counter.FlopCounterMode``:
  convolutions and matrix products only, elementwise work is not counted), and the machine's float32 ``torch.mm``
  throughput as the practical compute limit.

Usage::

    python benchmarks/se_overhead.py [--quick] [--json FILE] [--repeats N]

``--quick``: tiny network and images, for the test suite (a few seconds). The JSON has ``train_step_ratio``,
``peak_memory_ratio``, ``inference_ratio`` (scse / unet), the same with prefix ``naive_`` (naive / unet),
``param_overhead_pct``, ``effective_gflops`` (scse inference FLOPs / time) and ``matmul_peak_gflops``, plus the raw
figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    build_network,
    bundle_network_kwargs,
    check_finite,
    machine_info,
    matmul_peak_gflops,
    memory_env,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    write_json,
)

__all__ = ["main", "REQUIRED_KEYS", "VARIANTS"]

VARIANTS = ("unet", "naive", "scse")
REQUIRED_KEYS = [
    "train_step_ratio",
    "peak_memory_ratio",
    "inference_ratio",
    "naive_train_step_ratio",
    "naive_peak_memory_ratio",
    "naive_inference_ratio",
    "param_overhead_pct",
    "effective_gflops",
    "matmul_peak_gflops",
]

#: Sizes of the two modes; the full mode is the issue's 2D training step (256x256, batch 16, channels 32..512).
FULL = {"size": 256, "batch": 16, "repeats": 5, "warmup": 1, "matmul_n": 2048, "overrides": {}}
QUICK = {
    "size": 64,
    "batch": 2,
    "repeats": 2,
    "warmup": 1,
    "matmul_n": 512,
    "overrides": {"channels": [8, 16, 32, 64], "strides": [2, 2, 2]},
}


def _se_spec(spec: Any, memory_efficient: bool) -> list:
    """The bundle's SE spec with ``memory_efficient`` set (``"scse"`` or ``["scse", {...}]``)."""
    if isinstance(spec, (list, tuple)):
        name, kwargs = spec[0], dict(spec[1]) if len(spec) > 1 else {}
    else:
        name, kwargs = spec or "scse", {}
    return [name, {**kwargs, "memory_efficient": memory_efficient}]


def _variant_overrides(variant: str, base: dict[str, Any], mode: dict[str, Any]) -> dict[str, Any]:
    overrides = dict(mode["overrides"])
    if variant == "unet":
        overrides["se"] = None
    else:
        overrides["se"] = _se_spec(base.get("se", "scse"), memory_efficient=(variant == "scse"))
    return overrides


class _Case:
    """A network, its loss and optimizer, and a fixed batch."""

    def __init__(self, variant: str, base: dict[str, Any], mode: dict[str, Any]) -> None:
        from monai.losses import DiceCELoss

        torch.manual_seed(0)
        self.net = build_network(base, **_variant_overrides(variant, base, mode))
        # The bundle's loss (train.json "loss"); Adam as in the bundle.
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(1)
        spatial = [mode["size"]] * int(base["spatial_dims"])
        self.x = torch.randn([mode["batch"], int(base["in_channels"]), *spatial], generator=gen)
        self.y = torch.randint(0, int(base["out_channels"]), [mode["batch"], 1, *spatial], generator=gen)

    def train_step(self) -> None:
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.net(self.x), self.y).backward()
        self.opt.step()

    def infer(self) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return self.net(self.x)

    def flops(self) -> tuple[int, int]:
        """FLOPs of one inference batch and of one training step's forward + backward."""
        with FlopCounterMode(display=False) as counter:
            self.infer()
        inference = counter.get_total_flops()
        self.net.train()
        with FlopCounterMode(display=False) as counter:
            self.loss(self.net(self.x), self.y).backward()
        self.opt.zero_grad(set_to_none=True)
        return inference, counter.get_total_flops()

    def saved_tensor_bytes(self) -> int:
        """Bytes of the distinct storages autograd keeps for backward in one training forward."""
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        self.net.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = self.loss(self.net(self.x), self.y)
        del out
        params = {p.untyped_storage().data_ptr() for p in self.net.parameters()}
        return sum(n for ptr, n in storages.items() if ptr not in params)


def _memory_worker(variant: str, quick: bool) -> dict[str, Any]:
    """Run in a fresh process: the peak memory of one training step of ``variant`` (see the module docstring)."""
    mode = QUICK if quick else FULL
    base, _ = bundle_network_kwargs()
    case = _Case(variant, base, mode)
    case.train_step()  # warm-up: Adam state, oneDNN primitives, lazy initialisations
    case.opt.zero_grad(set_to_none=True)
    gc.collect()
    before = rss_bytes()
    exact = reset_peak_rss()
    case.train_step()
    peak = peak_rss_bytes()
    result = {
        "variant": variant,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "step_peak_bytes": peak - before if exact else peak,
        "method": "VmHWM reset via /proc/self/clear_refs" if exact else "ru_maxrss of a fresh process (coarse)",
    }
    case.opt.zero_grad(set_to_none=True)
    result["saved_tensor_bytes"] = case.saved_tensor_bytes()
    return result


def _measure_memory(quick: bool) -> dict[str, dict[str, Any]]:
    """One fresh worker process per variant. They run concurrently: each measures only its own resident set."""
    procs = {}
    for variant in VARIANTS:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", variant]
        procs[variant] = subprocess.Popen(
            cmd + (["--quick"] if quick else []),
            env=memory_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for variant, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"memory worker for {variant} failed:\n{err[-4000:]}")
        results[variant] = json.loads(out.strip().splitlines()[-1])
    return results


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Run the benchmark and return the result dictionary (see the module docstring)."""
    import time

    mode = dict(QUICK if quick else FULL)
    if repeats is not None:
        mode["repeats"] = repeats
    base, source = bundle_network_kwargs()
    info = machine_info()
    matmul_before = matmul_peak_gflops(mode["matmul_n"])

    cases = {v: _Case(v, base, mode) for v in VARIANTS}
    params = {v: sum(p.numel() for p in c.net.parameters()) for v, c in cases.items()}
    flops = {v: c.flops() for v, c in cases.items()}
    for c in cases.values():
        for _ in range(mode["warmup"]):
            c.train_step()
            c.infer()

    train_t: dict[str, list[float]] = {v: [] for v in VARIANTS}
    infer_t: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in tqdm(range(mode["repeats"]), desc="se_overhead", disable=quick, file=sys.stderr):
        order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
        for v in order:
            t0 = time.perf_counter()
            cases[v].train_step()
            train_t[v].append(time.perf_counter() - t0)
        for v in order:
            t0 = time.perf_counter()
            cases[v].infer()
            infer_t[v].append(time.perf_counter() - t0)
    del cases
    gc.collect()

    memory = _measure_memory(quick)
    matmul_after = matmul_peak_gflops(mode["matmul_n"])

    train = {v: _median(train_t[v]) for v in VARIANTS}
    infer = {v: _median(infer_t[v]) for v in VARIANTS}
    peak = {v: memory[v]["step_peak_bytes"] for v in VARIANTS}
    result: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "network_source": source,
        "network": {**base, **mode["overrides"]},
        "input_shape": [mode["batch"], int(base["in_channels"])] + [mode["size"]] * int(base["spatial_dims"]),
        "repeats": mode["repeats"],
        "machine": info,
        "loadavg_after": machine_info()["loadavg"],
        "train_step_s": train,
        "inference_s": infer,
        "train_step_all_s": train_t,
        "inference_all_s": infer_t,
        "memory": memory,
        "params": params,
        "inference_flops": {v: f[0] for v, f in flops.items()},
        "train_step_flops": {v: f[1] for v, f in flops.items()},
        "matmul_gflops_before_after": [matmul_before, matmul_after],
        "train_step_ratio": train["scse"] / train["unet"],
        "peak_memory_ratio": peak["scse"] / peak["unet"],
        "inference_ratio": infer["scse"] / infer["unet"],
        "naive_train_step_ratio": train["naive"] / train["unet"],
        "naive_peak_memory_ratio": peak["naive"] / peak["unet"],
        "naive_inference_ratio": infer["naive"] / infer["unet"],
        "param_overhead_pct": 100.0 * (params["scse"] - params["unet"]) / params["unet"],
        "effective_gflops": flops["scse"][0] / infer["scse"] / 1e9,
        "unet_effective_gflops": flops["unet"][0] / infer["unet"] / 1e9,
        "matmul_peak_gflops": max(matmul_before, matmul_after),
    }
    result["effective_fraction_of_matmul_peak"] = result["effective_gflops"] / result["matmul_peak_gflops"]
    check_finite(result, REQUIRED_KEYS)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    mib = 1024.0**2
    rows = [
        ("", "UNet", "scSE naive", "scSE (ours)"),
        ("train step [ms]", *(f"{1e3 * result['train_step_s'][v]:.1f}" for v in VARIANTS)),
        (
            "  ratio to UNet",
            "1.00",
            f"{result['naive_train_step_ratio']:.3f}",
            f"{result['train_step_ratio']:.3f}",
        ),
        ("step peak memory [MiB]", *(f"{result['memory'][v]['step_peak_bytes'] / mib:.1f}" for v in VARIANTS)),
        (
            "  ratio to UNet",
            "1.00",
            f"{result['naive_peak_memory_ratio']:.3f}",
            f"{result['peak_memory_ratio']:.3f}",
        ),
        ("saved for backward [MiB]", *(f"{result['memory'][v]['saved_tensor_bytes'] / mib:.1f}" for v in VARIANTS)),
        ("inference / batch [ms]", *(f"{1e3 * result['inference_s'][v]:.1f}" for v in VARIANTS)),
        (
            "  ratio to UNet",
            "1.00",
            f"{result['naive_inference_ratio']:.3f}",
            f"{result['inference_ratio']:.3f}",
        ),
        ("parameters", *(f"{result['params'][v]:,}" for v in VARIANTS)),
        ("inference GFLOP / batch", *(f"{result['inference_flops'][v] / 1e9:.2f}" for v in VARIANTS)),
        (
            "inference GFLOP/s",
            *(f"{result['inference_flops'][v] / result['inference_s'][v] / 1e9:.1f}" for v in VARIANTS),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.append(
        f"parameter overhead {result['param_overhead_pct']:.2f} %; matmul peak {result['matmul_peak_gflops']:.1f} "
        f"GFLOP/s; scSE inference reaches {result['effective_gflops']:.1f} GFLOP/s "
        f"({100 * result['effective_fraction_of_matmul_peak']:.0f} % of it)"
    )
    lines.append(
        f"input {result['input_shape']}, median of {result['repeats']} interleaved repetitions, "
        f"{result['machine']['threads']} threads, load average before/after "
        f"{result['machine']['loadavg'][0] if result['machine']['loadavg'] else 'n/a'}/"
        f"{result['loadavg_after'][0] if result['loadavg_after'] else 'n/a'}, network from {result['network_source']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the test suite")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON to this file")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per variant")
    parser.add_argument("--memory-worker", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(_memory_worker(args.memory_worker, args.quick)))
        return 0
    result = run(quick=args.quick, repeats=args.repeats)
    print(format_table(result))
    if args.json is not None:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
