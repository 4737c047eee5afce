"""Corpus round 3, checkpoints: the one check every entry point runs before loading ``models/model.pt``.

:func:`scse_monai.handlers.check_model_file` (bundle inference and evaluation, hence ``demo`` and ``ablate``) on
damaged, foreign and mismatched checkpoints: each must be refused with one line naming the file and what differs,
leave the file as it was, and accept what is valid. The bundle command line's own cases (one line as the last line,
a bare tensor, the overrides to pass) are in tests/bundle/test_bundle_cli.py.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from scse_monai.errors import InvalidInputError
from scse_monai.handlers import check_model_file, network_record
from scse_monai.handlers.model_record import write_model_record
from scse_monai.networks.nets import SEDynUNet, SEUNet

from .corpus import record

SETTINGS = {"pixdim": [1.5, 1.5], "ct_window": [-175, 250]}


def small_unet(**kwargs) -> SEUNet:
    return SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(4, 8, 16), strides=(2, 2),
                  num_res_units=1, norm="batch", **kwargs)


def trained(tmp_path: Path, net: torch.nn.Module | None = None, settings: dict | None = None) -> Path:
    """``models/model.pt`` and its record, as training writes them."""
    net = net or small_unet()
    path = tmp_path / "models" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    write_model_record(path, network_record(net, settings or SETTINGS))
    return path


def _nan_running_var(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    key = next(k for k in state if k.endswith("running_var"))
    state[key][0] = math.nan
    torch.save(state, path)


def _overwrite(obj) -> Callable[[Path], None]:
    return lambda path: torch.save(obj, path)


def _edit_state(fn) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        fn(state)
        torch.save(state, path)
    return edit


# (case, how the file is damaged, what the one line must say)
REFUSED = [
    ("bare tensor", _overwrite(torch.zeros(3)), "not a state dict (found Tensor)"),
    ("list of tensors", _overwrite([torch.zeros(3)]), "not a state dict (found list)"),
    ("empty dict", _overwrite({}), "not a state dict"),
    ("dict of numbers", _overwrite({"a": 1.0}), "not a state dict (found a dict that is not parameter names"),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot read checkpoint"),
    ("zero bytes", lambda p: p.write_bytes(b""), "cannot read checkpoint"),
    ("random bytes", lambda p: p.write_bytes(bytes(range(256)) * 8), "expected a state_dict saved with torch.save"),
    ("NaN in one running_var", _nan_running_var, "non-finite values (NaN or inf) in "),
    ("inf in a weight", _edit_state(lambda s: s[next(iter(s))].view(-1).__setitem__(0, math.inf)),
     "non-finite values (NaN or inf) in"),
    ("a key missing", _edit_state(lambda s: s.pop(next(iter(s)))), "1 parameter(s) of the network missing"),
    ("an extra key", _edit_state(lambda s: s.__setitem__("extra.weight", torch.zeros(1))), "1 unexpected (e.g. extra"),
    ("a shape changed", _edit_state(lambda s: s.__setitem__(next(iter(s)), torch.zeros(2, 2))),
     "1 of another shape"),
]


@pytest.mark.parametrize("case, damage, said", REFUSED, ids=[c[0] for c in REFUSED])
def test_damaged_checkpoints_are_refused_in_one_line_naming_the_file(tmp_path: Path, case: str, damage, said: str
                                                                     ) -> None:
    path = trained(tmp_path)
    (path.parent / "model.json").unlink()  # no record: the file's own content is what is checked
    damage(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InvalidInputError) as info:
        check_model_file(path, small_unet(), SETTINGS)
    message = str(info.value)
    ok = message.startswith(f"{path}: ") and said in message and "\n" not in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    record("checkpoints", "refused clearly" if ok else "escaped")
    assert ok, message


@pytest.mark.parametrize("configured, said", [
    (lambda: small_unet(se=None), "network_def#se: trained ['scse', {}], configured None"),
    (lambda: SEUNet(2, 1, 5, (8, 16, 32), (2, 2), num_res_units=1), "network_def#channels: trained [4, 8, 16], "
                                                                        "configured [8, 16, 32]"),
    (lambda: small_unet(se=("scse", {"aggregation": "add"})), "network_def#se: trained"),
    (lambda: SEDynUNet(3, 1, 5, [3, 3, 3], [1, 2, 2], [2, 2]), "network_def#_target_: trained "
                                                                  "'scse_monai.networks.nets.seunet.SEUNet'"),
], ids=["no-SE baseline", "other channels", "same shapes, other aggregation", "3D network"])
def test_a_model_of_another_network_names_each_difference(tmp_path: Path, configured, said: str) -> None:
    path = trained(tmp_path, small_unet(se=("scse", {})))
    with pytest.raises(InvalidInputError) as info:
        check_model_file(path, configured(), SETTINGS)
    ok = said in str(info.value) and "pass the training's settings: --network_def#" in str(info.value)
    record("checkpoints", "refused clearly" if ok else "escaped")
    assert ok, str(info.value)


def test_other_preprocessing_settings_are_named_with_the_override(tmp_path: Path) -> None:
    path = trained(tmp_path, settings={**SETTINGS, "pixdim": [6.0, 6.0]})
    with pytest.raises(InvalidInputError, match=r"pixdim: trained \[6.0, 6.0\], configured \[1.5, 1.5\].*"
                                                 r"--pixdim '\[6.0, 6.0\]'"):
        check_model_file(path, small_unet(), SETTINGS)
    record("checkpoints", "refused clearly")


def test_valid_checkpoints_are_accepted(tmp_path: Path) -> None:
    """As trained, under a "model" key (MONAI Label's layout), and without a record: all load."""
    path = trained(tmp_path)
    check_model_file(path, small_unet(), SETTINGS)
    nested = trained(tmp_path / "nested")
    torch.save({"model": torch.load(nested, weights_only=True)}, nested)  # the record now describes another file
    check_model_file(nested, small_unet(), SETTINGS)
    (path.parent / "model.json").unlink()
    check_model_file(path, small_unet(), SETTINGS)
    for _ in range(3):
        record("checkpoints", "correct result")


def test_a_stale_record_is_not_trusted(tmp_path: Path) -> None:
    """model.pt replaced by hand after training: its record (other hash) is ignored, the weights themselves decide."""
    path = trained(tmp_path)
    torch.save(small_unet(se=None).state_dict(), path)
    with pytest.raises(InvalidInputError, match=r"do not fit the configured network_def: \d+ parameter\(s\)"):
        check_model_file(path, small_unet(), SETTINGS)
    record("checkpoints", "refused clearly")


def test_a_missing_model_says_to_train_first(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"model.pt: no trained model here; train first"):
        check_model_file(tmp_path / "models" / "model.pt", small_unet(), SETTINGS)
    record("checkpoints", "refused clearly")
