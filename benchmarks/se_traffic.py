"""The memory-traffic bound of scSE on this machine: bytes each SE layer moves against the measured bandwidth.

scSE is elementwise work around tiny matrix products: its cost is set by how many times each full-size activation
is read and written, not by FLOPs. For the bundle's network at the benchmark's full size (``se_overhead.py``) this
script records every SE layer's activation size N (elements) with forward hooks, and multiplies it by the number of
full-size element passes (one read or one write of N elements) of

- ``eager``: the ops of the default training path as implemented (``SCSEMaxFunction``: forward = the formula's
  squeezes, two products and a max; backward = the recomputed products, ``torch.maximum``'s derivative masks and
  the chain rule, op by op), counted by hand from ``scse_monai/networks/blocks/fused_scse.py`` below;
- ``fused``: the minimum any kernel needs: forward reads x twice (squeezes, then the gated product) and writes the
  output once; backward reads x and the incoming gradient twice each (the gate gradients are reductions that the
  input gradient needs first) and writes the input gradient once.

The bandwidth is measured with ``torch.add`` on tensors far larger than the caches (read 2 x, write 1 x).
Usage::

    python benchmarks/se_traffic.py [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_network, bundle_network_kwargs, machine_info, write_json  # noqa: E402

# Element passes per SE layer of N elements (read N = 1, write N = 1; bool masks count 1/4, float32 activations).
EAGER_PASSES = {
    # mean over space (1), squeeze C->1 as a batched product (1), x * g_c (2), x * g_s (2), maximum (3)
    "forward": 9.0,
    # on CPU (SCSEMaxFunction's in-place path): squeeze recompute (1), p and q (2 + 2), p -= q (3), sign (2),
    # grad / 2 into q's buffer (2), grad_p = h + h s (3), grad_q = h - h s in place (3), grad_q * x into p's buffer
    # (3) and its channel sum (1), the channel gate's gradient as a batched dot reading grad_p and x (2), the
    # squeeze's weight gradient as a batched product reading x (1), grad_x = grad_p * g_c (2) + grad_q * g_s (3)
    # + grad_pre * w (2), all in place
    "backward": 32.0,
}
FUSED_PASSES = {"forward": 3.0, "backward": 5.0}
FULL = {"size": 256, "batch": 16}


def bandwidth_gbs(elements: int = 1 << 26, repeats: int = 5) -> float:
    """Sustained memory bandwidth in GB/s from ``torch.add(a, b, out=c)`` (3 x 4 bytes per element)."""
    a, b, c = torch.rand(elements), torch.rand(elements), torch.empty(elements)
    torch.add(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.add(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 3 * 4 * elements / best / 1e9


def se_layer_elements(size: int, batch: int) -> dict[str, int]:
    """Activation elements at each SE layer of the bundle's network for a (batch, 1, size, size) input."""
    from scse_monai.networks import iter_se_layers

    base, _ = bundle_network_kwargs()
    net = build_network(base).eval()
    sizes: dict[str, int] = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, n=name: sizes.__setitem__(n, o.numel()))
             for name, layer in iter_se_layers(net)]
    with torch.no_grad():
        net(torch.zeros(batch, int(base["in_channels"]), *[size] * int(base["spatial_dims"])))
    for h in hooks:
        h.remove()
    return sizes


def run(size: int = FULL["size"], batch: int = FULL["batch"]) -> dict[str, Any]:
    """Elements per layer, bytes per training step (eager and fused) and their time at the measured bandwidth."""
    layers = se_layer_elements(size, batch)
    total = sum(layers.values())
    bw = bandwidth_gbs()
    result: dict[str, Any] = {"input_shape": [batch, 1, size, size], "se_layer_elements": layers,
                              "total_elements": total, "bandwidth_gbs": bw, "machine": machine_info()}
    for name, passes in (("eager", EAGER_PASSES), ("fused", FUSED_PASSES)):
        for phase in ("forward", "backward"):
            nbytes = 4 * passes[phase] * total
            result[f"{name}_{phase}_bytes"] = nbytes
            result[f"{name}_{phase}_seconds"] = nbytes / (bw * 1e9)
        result[f"{name}_train_step_seconds"] = result[f"{name}_forward_seconds"] + result[f"{name}_backward_seconds"]
        result[f"{name}_inference_seconds"] = result[f"{name}_forward_seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON to this file")
    args = parser.parse_args(argv)
    result = run()
    mib = 1024.0**2
    print(f"SE layers: {len(result['se_layer_elements'])}, {result['total_elements'] / 1e6:.1f} M elements in all; "
          f"bandwidth {result['bandwidth_gbs']:.1f} GB/s")
    for name in ("eager", "fused"):
        fwd, bwd = result[f"{name}_forward_bytes"] / mib, result[f"{name}_backward_bytes"] / mib
        t_fwd, t_bwd = 1e3 * result[f"{name}_forward_seconds"], 1e3 * result[f"{name}_backward_seconds"]
        print(f"{name}: forward {fwd:.0f} MiB ({t_fwd:.0f} ms), backward {bwd:.0f} MiB ({t_bwd:.0f} ms) per step")
    if args.json is not None:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
