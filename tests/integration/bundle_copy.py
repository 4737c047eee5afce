"""A bundle copy shrunk to the test sizes, as a user would edit a copy for a small CPU (shared by the MONAI Label
tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from monai.bundle import ConfigParser

from ..conftest import TINY_BUNDLE_OVERRIDES

__all__ = ["shrink_configs"]


def shrink_configs(configs: Path, edit: Callable[[str, dict], None] | None = None) -> None:
    """Apply the test sizes to ``configs/train.json`` and ``inference.json`` in place (``epochs`` stays as shipped:
    MONAI Label's ``max_epochs`` sets it); ``edit(name, config)`` may change a config further before it is written."""
    for name in ("train.json", "inference.json"):
        parser = ConfigParser()
        parser.read_config(str(configs / name))
        for key, value in TINY_BUNDLE_OVERRIDES.items():
            if key in parser and key != "epochs":
                parser[key] = value
        config = {k: v for k, v in parser.config.items() if k != "_meta_"}
        if edit is not None:
            edit(name, config)
        (configs / name).write_text(json.dumps(config, indent=4) + "\n")
