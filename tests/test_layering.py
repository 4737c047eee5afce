"""The core never imports ``scse_monai.apps``: networks, metrics, data, handlers, transforms and utils stand alone.

Every module of the package outside ``scse_monai/apps/`` and the command line (``cli.py``, which dispatches to the
apps) is parsed, and every import in it (top level or inside a function) and every string handed to
``importlib.import_module`` is checked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import scse_monai

PACKAGE = Path(scse_monai.__file__).parent
EXEMPT = {PACKAGE / "cli.py", PACKAGE / "__main__.py"}


def _core_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if (PACKAGE / "apps") not in p.parents and p not in EXEMPT)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imported_names(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source``, relative imports resolved from ``package``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("scse_monai."):
            found.append((node.lineno, node.value))  # e.g. importlib.import_module("scse_monai.apps...") or a lazy map
    return found


def _is_apps(module: str) -> bool:
    return module == "scse_monai.apps" or module.startswith("scse_monai.apps.")


def test_the_walk_sees_the_core() -> None:
    modules = {_module_name(p) for p in _core_modules()}
    assert {"scse_monai.metrics.chaos", "scse_monai.handlers.organ_dice", "scse_monai.data.weights",
            "scse_monai.data.inputs", "scse_monai.networks.nets.seunet", "scse_monai.utils.io"} <= modules
    assert not any(_is_apps(m) for m in modules)


def test_the_check_catches_every_import_form() -> None:
    """Top-level, function-local, relative and ``import_module`` string: all four are found; the core's own not."""
    source = ("import scse_monai.apps.chaos\n"
              "def f():\n    from scse_monai.apps.chaos.io import read_png_stack\n"
              "from ..apps import demo\n"
              "import importlib\nimportlib.import_module('scse_monai.apps.stats')\n"
              "from ..data.labels import ORGANS\nfrom . import dicom\n")
    names = _imported_names(source, "scse_monai.data")
    assert sorted({line for line, m in names if _is_apps(m)}) == [1, 3, 4, 6]
    assert (7, "scse_monai.data.labels") in names and (8, "scse_monai.data.dicom") in names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_does_not_import_apps(path: Path) -> None:
    names = _imported_names(path.read_text(encoding="utf-8"), _package_of(path))
    offending = [(line, m) for line, m in names if _is_apps(m)]
    assert not offending, f"{path.relative_to(PACKAGE.parent)} imports the apps: {offending}"


def test_importing_the_package_and_the_core_loads_no_app() -> None:
    code = ("import sys, scse_monai, scse_monai.data, scse_monai.metrics, scse_monai.handlers, scse_monai.utils, "
            "scse_monai.data.labels, scse_monai.data.dicom, scse_monai.data.weights, scse_monai.data.inputs, "
            "scse_monai.handlers.organ_dice, scse_monai.metrics.chaos_metric, scse_monai.networks.nets; "
            "print([m for m in sys.modules if m.startswith('scse_monai.apps')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]"
