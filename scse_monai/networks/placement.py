"""SE anywhere: add SE layers after chosen modules of an existing network.

:func:`add_se` puts an SE layer after every module that a placement rule selects (a module type, a pattern on the
qualified module names, or a predicate), in any network: MONAI's ``BasicUNet``, ``AttentionUnet``,
``FlexibleUNet``, ``SwinUNETR``, or your own. Each selected module is swapped, through MONAI's
:func:`~monai.networks.utils.replace_modules`, for ``module`` followed by an SE layer (``nn.Sequential(module, se)``,
or :class:`~scse_monai.networks.wrappers.SEAfterTwoInputs` for decoder blocks called as ``block(x, skip)``), so the
network's ``forward`` runs unchanged and the original modules keep their weights.

Channel counts and dimensions come from a dry run: one forward pass of ``example_input`` (in eval mode, without
gradients) records what each selected module actually emits and how it is called. Attributes such as
``out_channels`` are not relied on: many blocks have none (``TwoConv``, ``UpCat``) or emit something else (a
concatenation). A second dry run checks that every new SE layer is reached by ``forward``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from monai.networks.utils import replace_modules

from scse_monai.networks.layers.utils import SESpec, get_se_layer, normalize_se_spec, se_layer_types
from scse_monai.networks.wrappers import se_after

__all__ = ["add_se", "select_modules"]

Placement = type | tuple[type, ...] | str | Callable[[str, nn.Module], bool]


def select_modules(net: nn.Module, placement: Placement) -> list[str]:
    r"""Qualified names of the outermost modules of ``net`` that ``placement`` selects, in registration order.

    Args:
        net: the network.
        placement: a module class or tuple of classes (``isinstance``); a regular expression that must match a
            whole qualified name (``re.fullmatch``, e.g. ``r"down_\d|upcat_\d"``); or a predicate
            ``(name, module) -> bool``. A selected module's submodules are not selected again; existing SE layers
            and the network itself never are.
    """
    if isinstance(placement, str):
        pattern = re.compile(placement)

        def rule(name: str, module: nn.Module) -> bool:
            return pattern.fullmatch(name) is not None
    elif isinstance(placement, type | tuple):

        def rule(name: str, module: nn.Module) -> bool:
            return isinstance(module, placement)
    elif callable(placement):
        rule = placement
    else:
        raise TypeError(f"placement must be a module type, a name pattern or a predicate, got {placement!r}.")
    se_types = se_layer_types()
    selected: list[str] = []
    skip: list[str] = []  # prefixes of selected modules and of existing SE layers
    for name, module in net.named_modules():
        if not name or any(name.startswith(p + ".") for p in skip):
            continue
        if isinstance(module, se_types):
            skip.append(name)
        elif rule(name, module):
            selected.append(name)
            skip.append(name)
    return selected


def _dry_run(net: nn.Module, modules: dict[str, nn.Module], example_input: torch.Tensor) -> dict[str, list]:
    """Call ``net(example_input)``; return, per module name, ``(num_args, has_kwargs, output)`` of each call."""
    calls: dict[str, list] = {name: [] for name in modules}
    handles = []
    for name, module in modules.items():
        pending: list = []

        def pre_hook(m, args, kwargs, pending=pending):
            pending.append((len(args), bool(kwargs)))

        def hook(m, args, output, name=name, pending=pending):
            calls[name].append((*pending.pop(), output))

        handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(module.register_forward_hook(hook))
    training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(example_input)
    finally:
        net.train(training)
        for h in handles:
            h.remove()
    return calls


def add_se(
    net: nn.Module,
    placement: Placement,
    example_input: torch.Tensor | Sequence[int],
    se: SESpec = "scse",
) -> nn.Module:
    r"""Add an SE layer after every module of ``net`` that ``placement`` selects; returns ``net``, modified in place.

    Roy et al., "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation'
    Blocks", IEEE TMI 2019: recalibrate the output of encoder and decoder blocks (P5, Table IV). In a U-Net, putting
    the SE after an encoder block makes the skip connection carry the recalibrated map ("configuration 1").

    Args:
        net: any network whose ``forward`` reaches the selected modules through its attributes.
        placement: which modules get an SE layer after them, see :func:`select_modules`: a module class (e.g.
            ``monai.networks.nets.basic_unet.TwoConv``), a regular expression on qualified names (e.g.
            ``r"conv_0|down_\d|upcat_\d"`` for all encoder and decoder blocks of ``BasicUNet``) or a predicate.
            Selected modules must be called with one tensor, or two for decoder blocks (``block(x, skip)``),
            positionally, exactly once per forward pass, and return a ``(batch, channels, *spatial)`` tensor.
        example_input: an input for the dry run that measures each module's output, or its shape, e.g.
            ``(1, 1, 64, 64)`` (zeros of the network's dtype and device).
        se: SE layer spec, as :func:`~scse_monai.networks.layers.get_se_layer` takes: ``"scse"`` (default,
            max-out, r = 2), ``"cse"``, ``"sse"``, ``("scse", {"r": 4})``, a registered name. ``None`` changes
            nothing.

    Returns:
        ``net`` itself, with each selected module replaced by the module followed by its SE layer.

    Raises:
        ValueError: when nothing is selected, a selected module is not called exactly once, is called with keyword
            or more than two inputs, or does not return a tensor; or when ``forward`` does not reach a new SE layer
            (``net`` then is restored as it was).

    Example::

        >>> from monai.networks.nets import BasicUNet
        >>> net = add_se(BasicUNet(spatial_dims=3, out_channels=5), r"conv_0|down_\d|upcat_\d", (1, 1, 32, 32, 32))
        >>> [name for name, _ in iter_se_layers(net)]
        ['conv_0.1', 'down_1.1', 'down_2.1', 'down_3.1', 'down_4.1', 'upcat_4.se', 'upcat_3.se', 'upcat_2.se',
         'upcat_1.se']
    """
    se = normalize_se_spec(se)
    if se is None:
        return net
    names = select_modules(net, placement)
    if not names:
        raise ValueError(f"placement {placement!r} selects no module of {type(net).__name__}.")
    if not isinstance(example_input, torch.Tensor):
        p = next(net.parameters(), None)
        example_input = torch.zeros(*example_input, dtype=p.dtype if p is not None else None,
                                    device=p.device if p is not None else None)
    modules = dict(net.named_modules())
    selected = {name: modules[name] for name in names}
    calls = _dry_run(net, selected, example_input)
    wrappers = {}
    for name, module in selected.items():
        what = f"module {name!r} ({type(module).__name__})"
        if len(calls[name]) != 1:
            raise ValueError(f"{what} is called {len(calls[name])} times in one forward pass; expected once.")
        ((num_args, has_kwargs, output),) = calls[name]
        if has_kwargs or num_args not in (1, 2):
            raise ValueError(f"{what} is called with {num_args} positional and keyword inputs; SE can follow "
                             "modules called as module(x) or module(x, skip).")
        if not isinstance(output, torch.Tensor) or output.ndim < 3:
            raise ValueError(f"{what} returns {type(output).__name__}; expected a (batch, channels, *spatial) tensor.")
        layer = get_se_layer(se, output.ndim - 2, output.shape[1]).to(device=output.device)
        wrappers[name] = se_after(module, layer, num_args)
    for name, wrapper in wrappers.items():
        replace_modules(net, name, wrapper, strict_match=True, match_device=False)
    reached = _dry_run(net, {n: w[1] if isinstance(w, nn.Sequential) else w.se for n, w in wrappers.items()},
                       example_input)
    missed = [n for n, c in reached.items() if not c]
    if missed:
        for name in wrappers:
            replace_modules(net, name, selected[name], strict_match=True, match_device=False)
        raise ValueError(f"forward of {type(net).__name__} does not reach the SE layers after {missed}: it keeps "
                         "other references to those modules (DynUNet does: use SEDynUNet); the network is unchanged.")
    return net
