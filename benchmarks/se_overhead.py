"""What scSE costs on top of MONAI's UNet: training-step time, peak memory, inference time, parameters, FLOPs.

Three variants of the bundle's default network (``network_def`` of ``bundle/configs/train.json``, else
:data:`_common.DEFAULT_NETWORK`) are built with the same seed:

- ``unet``: ``SEUNet(se=None)``, i.e. exactly :class:`monai.networks.nets.UNet`;
- ``naive``: the bundle's scSE with ``memory_efficient=False``, the straightforward max-out
  ``torch.maximum(x * g_c, x * g_s)`` (kept here as the reference);
- ``scse``: the bundle's scSE as shipped (``memory_efficient=True``: in training
  :class:`scse_monai.networks.blocks.SCSEMaxFunction`, in inference the no-grad path of
  :func:`scse_monai.networks.blocks.scse_max`; compiled, the plain formula);
- ``unet_compiled`` and ``scse_compiled``: ``unet`` and ``scse`` under ``torch.compile`` (full mode; the first train
  step and the first inference, which compile, are timed apart: ``compile_seconds_unet``, ``compile_seconds_seunet``).

Measured in one run, on the same inputs:

- training step (forward, the bundle's DiceCE loss, backward, Adam step) and inference (eval mode, ``torch.no_grad``)
  times: after a warm-up, the variants are run interleaved (the order rotates every repetition) and the median of
  the repetitions is reported, so that a slow phase of a shared machine hits all variants alike; the time ratios
  are the medians of the per-repetition ratios (each pair ran back to back);
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

``--quick``: tiny network and images, for the test suite (a few seconds; compiles nothing unless ``--compile``).
``--device cuda`` runs on a GPU (peak memory from the CUDA allocator), ``--amp`` under autocast (bfloat16). The JSON has
``train_step_ratio``, ``peak_memory_ratio``, ``inference_ratio`` (scse / unet), the same with prefix ``naive_``
(naive / unet) and ``compiled_`` (scse_compiled / unet_compiled; null when nothing was compiled),
``compile_seconds_unet``, ``compile_seconds_seunet``, ``param_overhead_pct``, ``effective_gflops`` (scse inference
FLOPs / time) and ``matmul_peak_gflops``, plus the raw figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
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

EAGER = ("unet", "naive", "scse")
COMPILED = ("unet_compiled", "scse_compiled")
VARIANTS = EAGER + COMPILED
COMPILED_KEYS = ["compiled_train_step_ratio", "compiled_peak_memory_ratio", "compiled_inference_ratio",
                 "compile_seconds_unet", "compile_seconds_seunet"]
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
    variant = variant.removesuffix("_compiled")
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
        self.device = torch.device(mode.get("device", "cpu"))
        self.amp = bool(mode.get("amp", False))
        self.net = build_network(base, **_variant_overrides(variant, base, mode)).to(self.device)
        # nn.Module.compile compiles __call__ in place: the same parameters and state_dict keys
        self.model = self.net
        if variant.endswith("_compiled"):
            self.model = build_network(base, **_variant_overrides(variant, base, mode)).to(self.device)
            self.model.load_state_dict(self.net.state_dict())
            self.net = self.model
            self.model.compile()
        # The bundle's loss (train.json "loss"); Adam as in the bundle.
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(1)
        spatial = [mode["size"]] * int(base["spatial_dims"])
        self.x = torch.randn([mode["batch"], int(base["in_channels"]), *spatial], generator=gen).to(self.device)
        self.y = torch.randint(0, int(base["out_channels"]), [mode["batch"], 1, *spatial], generator=gen)
        self.y = self.y.to(self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_step(self) -> None:
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.loss(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self._sync()

    def infer(self) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(self.x)
        self._sync()
        return out

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


def _memory_worker(variant: str, mode: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: the peak memory of one training step of ``variant`` (see the module docstring)."""
    base, _ = bundle_network_kwargs()
    case = _Case(variant, base, mode)
    case.train_step()  # warm-up: Adam state, oneDNN primitives, lazy initialisations, compilation
    case.opt.zero_grad(set_to_none=True)
    gc.collect()
    if case.device.type == "cuda":
        before = torch.cuda.memory_allocated(case.device)
        torch.cuda.reset_peak_memory_stats(case.device)
        case.train_step()
        peak, exact, method = torch.cuda.max_memory_allocated(case.device), True, "torch.cuda.max_memory_allocated"
    else:
        before = rss_bytes()
        exact = reset_peak_rss()
        case.train_step()
        peak = peak_rss_bytes()
        method = "VmHWM reset via /proc/self/clear_refs" if exact else "ru_maxrss of a fresh process (coarse)"
    result = {
        "variant": variant,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "step_peak_bytes": peak - before if exact else peak,
        "method": method,
    }
    case.opt.zero_grad(set_to_none=True)
    if not variant.endswith("_compiled"):  # compiled graphs save their tensors outside these hooks
        result["saved_tensor_bytes"] = case.saved_tensor_bytes()
    return result


def _measure_memory(variants: tuple[str, ...], mode_args: list[str]) -> dict[str, dict[str, Any]]:
    """One fresh worker process per variant.

    Eager ones run concurrently (each measures only its own resident set), compiled ones after them.
    """
    results = {}
    for group in ([v for v in variants if v in EAGER], [v for v in variants if v in COMPILED]):
        procs = {}
        for variant in group:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", variant, *mode_args]
            procs[variant] = subprocess.Popen(cmd, env=memory_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)
        for variant, proc in procs.items():
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"memory worker for {variant} failed:\n{err[-4000:]}")
            results[variant] = json.loads(out.strip().splitlines()[-1])
    return results


def _paired_ratios(times: dict[str, list[float]], a: str, b: str) -> list[float] | None:
    """``a``'s time over ``b``'s, one ratio per repetition (None unless both ran).

    The two ran back to back in each repetition, so a slow phase of a shared machine cancels out of the ratio; the
    medians of the times would pair a's fast phase with b's slow one.
    """
    if a not in times or b not in times:
        return None
    return [x / y for x, y in zip(times[a], times[b], strict=True)]


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def make_mode(quick: bool = False, repeats: int | None = None, compile_: bool | None = None, device: str = "cpu",
              amp: bool = False) -> dict[str, Any]:
    """The sizes and options of one run (``compile_`` defaults to on in full mode, off in quick mode)."""
    mode = dict(QUICK if quick else FULL)
    if repeats is not None:
        mode["repeats"] = repeats
    mode.update(compile=(not quick) if compile_ is None else compile_, device=device, amp=amp, quick=quick)
    return mode


def _mode_args(mode: dict[str, Any]) -> list[str]:
    """The command line that recreates ``mode`` in a memory worker."""
    args = ["--quick"] if mode["quick"] else []
    return args + ["--device", mode["device"]] + (["--amp"] if mode["amp"] else [])


def _time_first(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(mode: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark and return the result dictionary (see the module docstring)."""
    variants = EAGER + (COMPILED if mode["compile"] else ())
    base, source = bundle_network_kwargs()
    info = machine_info()
    matmul_before = matmul_peak_gflops(mode["matmul_n"])

    cases = {v: _Case(v, base, mode) for v in variants}
    params = {v: sum(p.numel() for p in c.net.parameters()) for v, c in cases.items()}
    flops = {v: cases[v].flops() for v in EAGER}
    first_call_s = {}
    for v, c in tqdm(cases.items(), desc="warm-up / compile", disable=mode["quick"], file=sys.stderr):
        first_call_s[v] = _time_first(c.train_step) + _time_first(c.infer)
        for _ in range(mode["warmup"]):
            c.train_step()
            c.infer()

    train_t: dict[str, list[float]] = {v: [] for v in variants}
    infer_t: dict[str, list[float]] = {v: [] for v in variants}
    for r in tqdm(range(mode["repeats"]), desc="se_overhead", disable=mode["quick"], file=sys.stderr):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
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

    memory = _measure_memory(variants, _mode_args(mode))
    matmul_after = matmul_peak_gflops(mode["matmul_n"])

    train = {v: _median(train_t[v]) for v in variants}
    infer = {v: _median(infer_t[v]) for v in variants}
    peak = {v: memory[v]["step_peak_bytes"] for v in variants}

    def ratio(table: dict[str, float], a: str, b: str) -> float | None:
        return table[a] / table[b] if a in table and b in table else None

    # the time ratios: medians of the per-repetition ratios, which the JSON keeps as the spread behind them
    per_repeat = {
        f"{pre}{key}": _paired_ratios(times, a, b)
        for key, times in (("train_step_ratio", train_t), ("inference_ratio", infer_t))
        for pre, a, b in (("", "scse", "unet"), ("naive_", "naive", "unet"),
                          ("compiled_", "scse_compiled", "unet_compiled"))
    }

    def paired(key: str) -> float | None:
        return None if per_repeat[key] is None else _median(per_repeat[key])

    result: dict[str, Any] = {
        "mode": "quick" if mode["quick"] else "full",
        "device": mode["device"],
        "amp": mode["amp"],
        "compiled": mode["compile"],
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
        "first_call_s": first_call_s,
        "memory": memory,
        "params": params,
        "inference_flops": {v: f[0] for v, f in flops.items()},
        "train_step_flops": {v: f[1] for v, f in flops.items()},
        "matmul_gflops_before_after": [matmul_before, matmul_after],
        "train_step_ratio": paired("train_step_ratio"),
        "peak_memory_ratio": ratio(peak, "scse", "unet"),
        "inference_ratio": paired("inference_ratio"),
        "naive_train_step_ratio": paired("naive_train_step_ratio"),
        "naive_peak_memory_ratio": ratio(peak, "naive", "unet"),
        "naive_inference_ratio": paired("naive_inference_ratio"),
        "compiled_train_step_ratio": paired("compiled_train_step_ratio"),
        "compiled_peak_memory_ratio": ratio(peak, "scse_compiled", "unet_compiled"),
        "compiled_inference_ratio": paired("compiled_inference_ratio"),
        # compilation happens in the first train step and the first inference; one eager step of each is subtracted
        "compile_seconds_unet": _compile_seconds(first_call_s, train, infer, "unet"),
        "compile_seconds_seunet": _compile_seconds(first_call_s, train, infer, "scse"),
        "param_overhead_pct": 100.0 * (params["scse"] - params["unet"]) / params["unet"],
        "effective_gflops": flops["scse"][0] / infer["scse"] / 1e9,
        "unet_effective_gflops": flops["unet"][0] / infer["unet"] / 1e9,
        "matmul_peak_gflops": max(matmul_before, matmul_after),
    }
    result["effective_fraction_of_matmul_peak"] = result["effective_gflops"] / result["matmul_peak_gflops"]
    result["ratios_per_repeat"] = {k: v for k, v in per_repeat.items() if v is not None}
    check_finite(result, REQUIRED_KEYS + (COMPILED_KEYS if mode["compile"] else []))
    return result


def _compile_seconds(first: dict[str, float], train: dict[str, float], infer: dict[str, float], name: str):
    key = f"{name}_compiled"
    return first[key] - train[key] - infer[key] if key in first else None


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    mib = 1024.0**2
    variants = [v for v in VARIANTS if v in result["train_step_s"]]
    names = {"unet": "UNet", "naive": "scSE naive", "scse": "scSE (ours)", "unet_compiled": "UNet compiled",
             "scse_compiled": "scSE compiled"}
    baseline = {v: ("unet_compiled" if v.endswith("_compiled") else "unet") for v in variants}

    def ratios(table: dict[str, float]) -> list[str]:
        return [f"{table[v] / table[baseline[v]]:.3f}" for v in variants]

    def paired_ratios(times: dict[str, list[float]]) -> list[str]:
        # the JSON's time ratios: medians of the per-repetition ratios
        return [f"{_median(_paired_ratios(times, v, baseline[v])):.3f}" for v in variants]

    peak = {v: result["memory"][v]["step_peak_bytes"] for v in variants}
    rows = [
        ("", *(names[v] for v in variants)),
        ("train step [ms]", *(f"{1e3 * result['train_step_s'][v]:.1f}" for v in variants)),
        ("  ratio to UNet (paired)", *paired_ratios(result["train_step_all_s"])),
        ("step peak memory [MiB]", *(f"{peak[v] / mib:.1f}" for v in variants)),
        ("  ratio to UNet", *ratios(peak)),
        ("saved for backward [MiB]",
         *(f"{result['memory'][v]['saved_tensor_bytes'] / mib:.1f}" if "saved_tensor_bytes" in result["memory"][v]
           else "-" for v in variants)),
        ("inference / batch [ms]", *(f"{1e3 * result['inference_s'][v]:.1f}" for v in variants)),
        ("  ratio to UNet (paired)", *paired_ratios(result["inference_all_s"])),
        ("parameters", *(f"{result['params'][v]:,}" for v in variants)),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.append(
        f"parameter overhead {result['param_overhead_pct']:.2f} %; matmul peak {result['matmul_peak_gflops']:.1f} "
        f"GFLOP/s; scSE inference reaches {result['effective_gflops']:.1f} GFLOP/s "
        f"({100 * result['effective_fraction_of_matmul_peak']:.0f} % of it)"
    )
    if result["compiled"]:
        lines.append(f"compile time (first train step + first inference, less one of each): UNet "
                     f"{result['compile_seconds_unet']:.1f} s, SEUNet {result['compile_seconds_seunet']:.1f} s")
    lines.append(
        f"input {result['input_shape']}, {result['device']}{' + autocast bf16' if result['amp'] else ''}, median of "
        f"{result['repeats']} interleaved repetitions, {result['machine']['threads']} threads, load average "
        f"before/after {result['machine']['loadavg'][0] if result['machine']['loadavg'] else 'n/a'}/"
        f"{result['loadavg_after'][0] if result['loadavg_after'] else 'n/a'}, network from {result['network_source']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the test suite")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON to this file")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per variant")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time both networks under torch.compile (default: on in full mode)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--amp", action="store_true", help="autocast to bfloat16")
    parser.add_argument("--table", type=Path, default=None, metavar="JSON",
                        help="print the table of an earlier run's JSON and exit (what docs/performance.md quotes)")
    parser.add_argument("--memory-worker", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.table is not None:
        print(format_table(json.loads(args.table.read_text())))
        return 0
    mode = make_mode(args.quick, args.repeats, args.compile, args.device, args.amp)
    if args.memory_worker:
        print(json.dumps(_memory_worker(args.memory_worker, mode)))
        return 0
    result = run(mode)
    print(format_table(result))
    if args.json is not None:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
