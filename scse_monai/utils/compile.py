"""A ``torch.compile`` setting for training SE networks under automatic mixed precision."""

from __future__ import annotations

import torch._functorch.config

__all__ = ["backward_autocast_like_eager"]


def backward_autocast_like_eager(compile_: bool = True) -> bool:
    """When ``compile_`` is true, make compiled backward graphs run without autocast, as eager backward does.

    ``torch.compile`` traces a region's backward graph when its forward runs. With PyTorch's default of
    ``torch._functorch.config.backward_pass_autocast`` (``"same_as_forward"`` in torch 2.13) that backward is traced
    under the autocast state in force where the compiled region was entered, and ``torch.autocast(enabled=False)``
    regions inside the forward do not carry over to it (pytorch/pytorch#179804). The SE layers compute their squeezes,
    the cSE MLP and the gates in float32 under autocast (half-precision gates saturate); compiled inside an AMP
    training step, their gradients would then be computed in half precision again. Eager autograd runs backward
    without autocast (each op in the dtypes its forward used); ``"off"`` does the same for compiled graphs
    (``tests/utils/test_compile.py``). MONAI's ``SupervisedTrainer`` calls ``backward`` outside its autocast region,
    so this matches its eager training.

    It is a process-wide PyTorch setting; the bundle applies it through ``train#trainer#compile``. PyTorch versions
    without the setting (it is newer than this package's torch floor) are left as they are.

    Args:
        compile_: whether the network will be compiled; nothing is changed when False.

    Returns:
        ``compile_``, so that a bundle config can pass it on to the trainer's ``compile`` argument.
    """
    if compile_ and hasattr(torch._functorch.config, "backward_pass_autocast"):
        torch._functorch.config.backward_pass_autocast = "off"
    return bool(compile_)
