"""Where the repository's MONAI bundle (``bundle/configs/*.json``) lives, for code that drives it from Python.

The README installs the package editable from a clone (``pip install -e .``), so the bundle is the ``bundle/`` folder
next to the ``scse_monai`` package. The environment variable ``SCSE_MONAI_BUNDLE`` points elsewhere (a copied or
downloaded bundle, or a non-editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

from scse_monai.errors import InvalidInputError

__all__ = ["BUNDLE_ENV", "bundle_dir", "bundle_config"]

#: environment variable overriding the bundle folder (the folder holding ``configs/``).
BUNDLE_ENV = "SCSE_MONAI_BUNDLE"


def bundle_dir() -> Path:
    """The bundle root: ``$SCSE_MONAI_BUNDLE`` if set, else ``<repository>/bundle`` of this package's clone.

    Raises:
        InvalidInputError: when the folder has no ``configs/train.json`` (e.g. a non-editable install without
            ``SCSE_MONAI_BUNDLE``).
    """
    env = os.environ.get(BUNDLE_ENV)
    if env:
        root, origin = Path(env).expanduser().resolve(), f"${BUNDLE_ENV}"
    else:
        import scse_monai

        root, origin = Path(scse_monai.__file__).resolve().parents[1] / "bundle", "the package's clone"
    if not (root / "configs" / "train.json").is_file():
        raise InvalidInputError(
            f"no MONAI bundle here (expected configs/train.json; folder taken from {origin}). Install from a clone "
            f"with `pip install -e .`, or set {BUNDLE_ENV} to the bundle folder (the one holding configs/)",
            root,
        )
    return root


def bundle_config(name: str) -> Path:
    """Path of ``configs/<name>`` in :func:`bundle_dir` (``name`` with or without ``.json``).

    Raises:
        InvalidInputError: when the bundle or the file is missing.
    """
    file = bundle_dir() / "configs" / (name if name.endswith((".json", ".yaml", ".conf")) else f"{name}.json")
    if not file.is_file():
        raise InvalidInputError("bundle config file not found", file)
    return file
