"""backward_autocast_like_eager: compiled SE layers trained under autocast get eager's float32 gate gradients."""

from __future__ import annotations

import pytest
import torch
import torch._functorch.config as functorch_config

from scse_monai.networks.layers import get_se_layer
from scse_monai.utils import backward_autocast_like_eager


def test_false_changes_nothing_true_turns_backward_autocast_off() -> None:
    with functorch_config.patch(backward_pass_autocast="same_as_forward"):
        assert backward_autocast_like_eager(False) is False
        assert functorch_config.backward_pass_autocast == "same_as_forward"
        assert backward_autocast_like_eager(True) is True
        assert functorch_config.backward_pass_autocast == "off"


@pytest.mark.parametrize("name", ["scse", "sse"])
def test_compiled_gradients_under_autocast_equal_eager(name: str) -> None:
    """Under CPU bfloat16 autocast the layer's MLP and gates run in float32; compiled with the setting, every gradient
    equals eager's to float32 rounding (with torch 2.13's default the cSE MLP's weight gradients came out of a
    bfloat16 matrix product, 0.4 % off)."""
    torch.manual_seed(0)
    layer = get_se_layer(name, 2, 8)
    with torch.no_grad():  # keep the cSE MLP's ReLU units alive, so that its weights get gradients at all
        for module in layer.modules():
            if isinstance(module, torch.nn.Linear):
                module.bias.add_(1.0)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    up = torch.randn(2, 8, 8, 8)
    torch._dynamo.reset()
    try:
        with functorch_config.patch(backward_pass_autocast="same_as_forward"):
            backward_autocast_like_eager(True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                eager, compiled = layer(x), torch.compile(layer)(x)
            grads_eager = torch.autograd.grad(eager.float(), [x, *layer.parameters()], up)
            grads_compiled = torch.autograd.grad(compiled.float(), [x, *layer.parameters()], up)
    finally:
        torch._dynamo.reset()
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    assert all(g.abs().max() > 0 for g in grads_eager), "every gradient must carry a signal"
    for n, a, b in zip(names, grads_compiled, grads_eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"gradient of {n}: {m}")
