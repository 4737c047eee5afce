"""Checks shared by the SE network tests: baseline equality, closed-form overhead, training step, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from monai.networks.utils import convert_to_torchscript

from scse_monai.networks import iter_se_layers


def closed_form(c: int, r: int, kind: str) -> int:
    """SE parameters for C channels (SCSE.md §4, biases included): cSE 2C(C//r) + C//r + C, sSE C + 1."""
    cse = 2 * c * (c // r) + c // r + c
    sse = c + 1
    return {"cse": cse, "sse": sse, "scse": cse + sse}[kind]


def spec_of(kind: str, r: int):
    return kind if kind == "sse" else (kind, {"r": r})


def assert_same_network(baseline: nn.Module, net: nn.Module, x: torch.Tensor) -> None:
    """Same ``state_dict`` keys in the same order, equal tensors, equal eval outputs."""
    assert list(net.state_dict()) == list(baseline.state_dict())
    for (k, a), b in zip(baseline.state_dict().items(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    baseline.eval(), net.eval()
    with torch.no_grad():
        assert torch.equal(baseline(x), net(x))


def assert_training_step(net: nn.Module, x: torch.Tensor) -> None:
    """One forward/backward in training mode: finite loss; every SE parameter gets a finite, non-zero gradient."""
    net.train()
    out = net(x)
    target = torch.randn_like(out)
    loss = ((out - target) ** 2).mean()
    loss.backward()
    assert torch.isfinite(loss)
    se_params = [(f"{name}.{p_name}", p) for name, layer in iter_se_layers(net)
                 for p_name, p in layer.named_parameters()]
    assert se_params, "no SE parameters"
    for name, p in se_params:
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient"
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def assert_torchscript_matches(net: nn.Module, x: torch.Tensor) -> None:
    net.eval()
    scripted = convert_to_torchscript(net, verify=True, inputs=[x], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def assert_onnx_matches(net: nn.Module, x: torch.Tensor, path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net.eval()
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["pred"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), net(x), rtol=1e-4, atol=1e-5)


def assert_autocast_step(net: nn.Module, x: torch.Tensor) -> None:
    """Forward and backward under CPU bfloat16 autocast: output in bfloat16, finite gradients everywhere."""
    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16
    out.float().square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
