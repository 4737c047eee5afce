"""Where the MONAI bundle (``configs/*.json``, docs, LICENSE) lives, for code that drives it from Python.

The repository's top-level ``bundle/`` is the single source. A built wheel carries a copy of its shipped files as
package data (``scse_monai/bundle``, put there by ``setup.py``'s build step), read with :mod:`importlib.resources`;
an editable install (``pip install -e .``) reads the clone's ``bundle/``. The environment variable
``SCSE_MONAI_BUNDLE`` points elsewhere (e.g. an edited copy written by ``scse-monai bundle DIR``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from scse_monai.errors import InvalidInputError

__all__ = ["BUNDLE_ENV", "BUNDLE_PARTS", "VENDORED_SKIP", "bundle_dir", "bundle_config", "export_bundle"]

#: environment variable overriding the bundle folder (the folder holding ``configs/``).
BUNDLE_ENV = "SCSE_MONAI_BUNDLE"
#: what a bundle copy holds: what the wheel ships (training outputs such as ``models/`` are not part of it).
BUNDLE_PARTS = ("LICENSE", "configs", "docs")
#: what an exported bundle's ``scripts/scse_monai`` leaves out of the package: the configs import only its core.
VENDORED_SKIP = ("apps", "cli.py", "__main__.py", "bundle", "__pycache__", "*.pyc")

#: ``scripts/__init__.py`` of an exported bundle.
_SCRIPTS_INIT = '''"""This bundle's code in model-zoo's layout: scse_monai's core, copied by `scse-monai bundle`.

The configs import ``scripts`` first. That puts this folder first on ``sys.path``, so that ``import scse_monai``
finds the copy beside this file, the code these configs were written with, where the bundle root is on ``sys.path``
(model-zoo's CI, MONAI Label, a run from the bundle root). Elsewhere the installed package is used.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
'''


def _packaged_bundle() -> Path | None:
    """The bundle inside the installed package (a wheel install), or ``None`` (editable install, source tree)."""
    root = resources.files("scse_monai") / "bundle"
    if not (root / "configs" / "train.json").is_file():
        return None
    return Path(str(root))  # wheels install as folders: the resource is a real path


def bundle_dir() -> Path:
    """The bundle root: ``$SCSE_MONAI_BUNDLE``, else the installed package's bundle, else the clone's ``bundle/``.

    Raises:
        InvalidInputError: when the folder has no ``configs/train.json``.
    """
    env = os.environ.get(BUNDLE_ENV)
    if env:
        root, origin = Path(env).expanduser().resolve(), f"${BUNDLE_ENV}"
    elif (packaged := _packaged_bundle()) is not None:
        return packaged
    else:
        import scse_monai

        root, origin = Path(scse_monai.__file__).resolve().parents[1] / "bundle", "the package's clone"
    if not (root / "configs" / "train.json").is_file():
        raise InvalidInputError(
            f"no MONAI bundle here (expected configs/train.json; folder taken from {origin}). Install the wheel or "
            f"install from a clone with `pip install -e .`, or set {BUNDLE_ENV} to the bundle folder (the one "
            "holding configs/)",
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


def export_bundle(dest: str | os.PathLike) -> Path:
    """Write a ready-to-use copy of the bundle (``LICENSE``, ``configs/``, ``docs/``, ``scripts/``) to ``dest``.

    The copy is what ``python -m monai.bundle ... --bundle_root DEST``, MONAI Label's ``<app>/model/<name>/`` and
    model-zoo's CI expect; training then writes ``models/``, ``eval/`` and ``train_state/`` inside it. Following
    model-zoo's convention for bundles with custom code, ``scripts/`` holds a copy of this package's core
    (``scripts/scse_monai``, generated from the installed package, so the package stays the one source) and every
    config's first import is ``scripts`` (:func:`_write_scripts`); ``metadata.json`` then needs only PyPI packages.
    ``dest`` must be new or empty, outside the bundle it copies (:func:`scse_monai.utils.output_dir.check_output_dir`;
    a symlink to an empty folder is followed). The files are staged in a sibling folder and renamed into place, so
    ``dest`` is either as before or complete. The copy holds exactly the bundle's files (no output marker: the folder
    is never reused).

    Raises:
        InvalidInputError: when ``dest`` exists and is not an empty folder, or is, lies inside or contains the bundle
            (nothing is overwritten).
    """
    from scse_monai.utils.output_dir import check_output_dir

    source = bundle_dir()
    dest, _ = check_output_dir(dest, "bundle", {}, inputs={"bundle": source}, reuse=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for part in BUNDLE_PARTS:
            if (source / part).is_dir():
                shutil.copytree(source / part, staging / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif (source / part).is_file():
                shutil.copy2(source / part, staging / part)
            else:
                raise InvalidInputError(f"the bundle lacks {part}", source)
        _write_scripts(staging)
        os.chmod(staging, 0o777 & ~_umask())
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _write_scripts(bundle: Path) -> None:
    """Add ``scripts/`` (this package's core and an ``__init__`` that makes it importable) and import it first."""
    import json

    import scse_monai

    package = Path(scse_monai.__file__).resolve().parent
    scripts = bundle / "scripts"
    shutil.copytree(package, scripts / "scse_monai", ignore=shutil.ignore_patterns(*VENDORED_SKIP))
    (scripts / "__init__.py").write_text(_SCRIPTS_INIT)
    for config in sorted((bundle / "configs").glob("*.json")):
        content = json.loads(config.read_text())
        if isinstance(content, dict) and isinstance(content.get("imports"), list):
            content["imports"] = ["$import scripts", *content["imports"]]
            config.write_text(json.dumps(content, indent=4) + "\n")  # model-zoo's pretty-format-json layout


def _umask() -> int:
    from scse_monai.utils.io import current_umask

    return current_umask()
