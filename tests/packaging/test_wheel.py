"""The package as a user installs it: a wheel built from the clone, in a fresh virtualenv, used outside the clone.

The virtualenv is a plain one (no system site-packages, so nothing of the clone or of an editable install can leak
in); torch is installed first (``torch==<this torch's release>``, the local CPU build), then the wheel with its
dependencies. Every command runs from a folder outside the clone, without ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ..conftest import BUNDLE, REPO

pytestmark = pytest.mark.slow

SHIPPED = sorted(
    str(p.relative_to(BUNDLE)) for p in BUNDLE.rglob("*") if p.is_file() and p.parts[len(BUNDLE.parts)] in
    ("LICENSE", "configs", "docs")
)


def _run(argv: list, cwd: Path, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCSE_MONAI_BUNDLE", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _source_copy(dest: Path) -> Path:
    """The clone's tracked files (what a fresh clone holds), so the build writes nothing into the clone."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git clone: the wheel is built from the tracked files")
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("wheel")
    src = _source_copy(base / "src")
    # build isolation: pip installs pyproject's build requirements (setuptools, wheel) for the build, as for a user
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", src], base)
    (wheel,) = (base / "dist").glob("scse_monai-*.whl")
    _run([sys.executable, "-m", "venv", base / "venv"], base)
    python, scripts = base / "venv" / "bin" / "python", base / "venv" / "bin"
    _run([python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}"], base)  # first
    _run([python, "-m", "pip", "install", "-q", wheel], base)
    outside = base / "elsewhere"
    outside.mkdir()
    return SimpleNamespace(wheel=wheel, python=python, scripts=scripts, venv=base / "venv", cwd=outside)


def test_wheel_contents(installed: SimpleNamespace) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    bundled = sorted(n.removeprefix("scse_monai/bundle/") for n in names if n.startswith("scse_monai/bundle/"))
    assert bundled == SHIPPED  # the repository's bundle/ is the single source; models/, eval/ never travel


def test_package_and_bundle_come_from_the_wheel(installed: SimpleNamespace) -> None:
    out = _run([installed.python, "-c", "import scse_monai, scse_monai.bundle_paths as b; "
                "print(scse_monai.__file__); print(b.bundle_dir())"], installed.cwd)
    package, bundle = (Path(line) for line in out.split())
    assert installed.venv in package.parents and installed.venv in bundle.parents
    assert REPO not in package.parents


def test_wheel_ships_no_native_code(installed: SimpleNamespace) -> None:
    """The package is pure Python: no C source, shared library or compiled extension in the wheel (issue 24)."""
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".cpp", ".h", ".so", ".pyd", ".dll", ".dylib"))], names


def test_demo_quick_from_any_folder(installed: SimpleNamespace) -> None:
    _run([installed.scripts / "scse-monai", "demo", "--quick", "--quiet", "--out", "demo"], installed.cwd)
    assert (installed.cwd / "demo" / "report.md").is_file()


def test_bundle_export_verifies_and_matches_the_source(installed: SimpleNamespace) -> None:
    dest = installed.cwd / "my_bundle"
    _run([installed.scripts / "scse-monai", "bundle", dest], installed.cwd)
    exported = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert [n for n in exported if not n.startswith("scripts/")] == SHIPPED
    for name in SHIPPED:
        config = name.startswith("configs/") and name.endswith(".json")
        if config and "imports" in json.loads((BUNDLE / name).read_text()):
            # model-zoo's layout for custom code: every config imports the bundle's scripts/ first
            ours, source = json.loads((dest / name).read_text()), json.loads((BUNDLE / name).read_text())
            assert ours.pop("imports") == ["$import scripts", *source.pop("imports")] and ours == source, name
        else:
            assert (dest / name).read_bytes() == (BUNDLE / name).read_bytes(), name
    # scripts/scse_monai: the installed package's core, byte for byte (what the wheel installed from this clone)
    code = [n for n in exported if n.startswith("scripts/scse_monai/")]
    assert "scripts/scse_monai/networks/nets/seunet.py" in code and not any("/apps/" in n for n in code)
    for name in code:
        assert (dest / name).read_bytes() == (REPO / name.removeprefix("scripts/")).read_bytes(), name
    _run([installed.python, "-m", "monai.bundle", "verify_metadata", "--meta_file", dest / "configs" / "metadata.json",
          "--filepath", dest / "docs" / "meta_schema_20240725.json"], installed.cwd)


def test_benchmark_reads_the_installed_bundle(installed: SimpleNamespace) -> None:
    out = installed.cwd / "volume_inference.json"
    _run([installed.python, REPO / "benchmarks" / "volume_inference.py", "--quick", "--json", out], installed.cwd)
    assert json.loads(out.read_text())["config_source"] == "bundle/configs/inference.json"
