"""Build step that puts the repository's ``bundle/`` (its single source) into the wheel as ``scse_monai/bundle``.

Everything else is declared in ``pyproject.toml``. Only the bundle's shipped files travel (``LICENSE``, ``configs/``,
``docs/``), never what training writes into a clone's ``bundle/`` (``models/``, ``eval/``, ``train_state/``). An
editable install reads the clone's ``bundle/`` directly (``scse_monai.bundle_paths``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLE = Path(__file__).resolve().parent / "bundle"
BUNDLE_PARTS = ("LICENSE", "configs", "docs")


class BuildPyWithBundle(build_py):
    """``build_py`` that also copies the bundle's shipped files into ``<build_lib>/scse_monai/bundle``."""

    def run(self) -> None:
        """Build the package as usual, then add the bundle (not for editable installs)."""
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "scse_monai" / "bundle"
        shutil.rmtree(target, ignore_errors=True)
        for part in BUNDLE_PARTS:
            source = BUNDLE / part
            if not source.exists():
                raise FileNotFoundError(f"the bundle part {source} is missing: it is shipped in the wheel")
            if source.is_dir():
                shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / part)


setup(cmdclass={"build_py": BuildPyWithBundle})
