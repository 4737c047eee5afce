"""Where SEUNet's extra time goes: a per-kernel profile of one training step and one inference, UNet vs SEUNet.

``se_overhead.py`` measures the ratios; this script attributes the difference. It runs the same variants on the same
batch (``se_overhead._Case``: the bundle's network, DiceCE loss, Adam) under :mod:`torch.profiler`, sums the *self*
CPU time of every profiled op or kernel per name, and subtracts UNet's sums from SEUNet's, so the per-name
differences add up to the measured gap. For compiled variants, inductor's generated C++ kernels are profiled one by
one (``torch._inductor.config.cpp.enable_kernel_profile``), so a fused SE loop shows up under its own name.

The differences are grouped into:

- ``convolution``: aten convolution ops and their backward (the 1 x 1 sSE squeezes among them);
- ``matmul``: matrix products (the cSE MLP's linear layers, and inductor's extern ``mm``/``addmm``);
- ``inductor_kernel``: inductor's generated fused loops (``cpp_fused_*``);
- ``other``: every other aten op (eager elementwise ops and reductions, copies, the optimizer, ...).

Usage::

    python benchmarks/se_profile.py [--quick] [--compile] [--json FILE] [--top N]

The profiled step is the median-timed configuration of ``se_overhead.py`` (full mode: batch 16, 256 x 256, the bundle's
channels); the warm-up steps (and compilation) run before the profiler starts.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundle_network_kwargs, machine_info, write_json  # noqa: E402
from se_overhead import _Case, make_mode  # noqa: E402

__all__ = ["categorise", "main", "profile_variants"]


def categorise(name: str) -> str:
    """The group of a profiled op or kernel name (see the module docstring)."""
    lowered = name.lower()
    if "cpp_fused" in lowered or lowered.startswith("graph_"):
        return "inductor_kernel"
    if "conv" in lowered:
        return "convolution"
    if any(k in lowered for k in ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "extern_kernels.mm")):
        return "matmul"
    return "other"


def profile_variants(cases: dict[str, _Case], what: str, steps: int) -> dict[str, dict[str, float]]:
    """Self CPU milliseconds per op/kernel name and per call of ``train_step`` (``what="train"``) or ``infer``.

    The variants are profiled interleaved, one call each per round for ``steps`` rounds, so that a slow phase of a
    shared machine hits them alike (as in ``se_overhead.py``).
    """
    calls = {v: case.train_step if what == "train" else case.infer for v, case in cases.items()}
    per_name: dict[str, dict[str, float]] = {v: defaultdict(float) for v in cases}
    for call in calls.values():  # warm-up outside the profiler (compilation, oneDNN primitives, Adam state)
        call()
    for _ in range(steps):
        for v, call in calls.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                call()
            for event in prof.key_averages():
                per_name[v][event.key] += event.self_cpu_time_total / 1000.0 / steps
    return {v: dict(d) for v, d in per_name.items()}


def attribute(base: dict[str, float], se: dict[str, float], top: int) -> dict[str, Any]:
    """SEUNet minus UNet, per group and for the ``top`` names that differ most."""
    names = set(base) | set(se)
    diff = {n: se.get(n, 0.0) - base.get(n, 0.0) for n in names}
    groups: dict[str, float] = defaultdict(float)
    for n, d in diff.items():
        groups[categorise(n)] += d
    ranked = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]
    return {
        "total_ms": {"unet": sum(base.values()), "seunet": sum(se.values())},
        "gap_ms": sum(diff.values()),
        "gap_by_group_ms": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "top_differences_ms": [{"name": n, "group": categorise(n), "diff": d, "unet": base.get(n, 0.0),
                                "seunet": se.get(n, 0.0)} for n, d in ranked],
        "per_name_ms": {"unet": base, "seunet": se},
    }


def run(quick: bool, compiled: bool, steps: int, top: int) -> dict[str, Any]:
    """Profile UNet and SEUNet (eager, or both compiled) for a training step and an inference batch."""
    mode = make_mode(quick=quick, compile_=compiled)
    base, source = bundle_network_kwargs()
    suffix = "_compiled" if compiled else ""
    if compiled:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # one profiler event per generated C++ kernel
    spatial = [mode["size"]] * int(base["spatial_dims"])
    result: dict[str, Any] = {"machine": machine_info(), "network_source": source, "compiled": compiled,
                              "input": [mode["batch"], int(base["in_channels"]), *spatial], "steps": steps}
    cases = {v: _Case(v + suffix, base, mode) for v in ("unet", "scse")}
    for what in ("train", "inference"):
        profiles = profile_variants(cases, what, steps)
        result[what] = attribute(profiles["unet"], profiles["scse"], top)
    result["machine"]["loadavg_after"] = machine_info()["loadavg"]
    return result


def format_report(result: dict[str, Any]) -> str:
    """A plain-text summary: the gap per group and the largest differences."""
    lines = [f"{'compiled' if result['compiled'] else 'eager'}, input {result['input']}, "
             f"load {result['machine']['loadavg']} -> {result['machine']['loadavg_after']}"]
    for what in ("train", "inference"):
        r = result[what]
        lines.append(f"{what}: UNet {r['total_ms']['unet']:.1f} ms, SEUNet {r['total_ms']['seunet']:.1f} ms, "
                     f"gap {r['gap_ms']:+.1f} ms (self CPU time)")
        lines += [f"  {g:16s} {d:+9.1f} ms" for g, d in r["gap_by_group_ms"].items()]
        lines += [f"    {t['diff']:+9.1f}  {t['group']:16s} {t['name'][:90]}" for t in r["top_differences_ms"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny network and images (seconds)")
    parser.add_argument("--compile", action="store_true", help="profile both networks under torch.compile")
    parser.add_argument("--steps", type=int, default=4, help="profiled calls per variant (default 4)")
    parser.add_argument("--top", type=int, default=40, help="largest per-name differences to list")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    result = run(args.quick, args.compile, args.steps, args.top)
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
