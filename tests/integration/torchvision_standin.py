"""TEST-ONLY stand-in for torchvision, for environments without a torchvision build that matches the CPU torch.

``monailabel.transform.post`` imports ``make_grid`` and ``save_image`` from ``torchvision.utils`` when it loads,
only for its debug image dumps; the PyPI torchvision wheel that pairs with torch 2.13.0 is a CUDA build and fails to
import with the CPU torch (BUNDLE.md §9). The stand-in provides exactly those two names, which raise
``NotImplementedError``. It is written to a temporary folder put on the path of the MONAI Label tests only: never
ship or install it (MONAI probes for torchvision and would take the stand-in for the real thing).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

__all__ = ["real_torchvision_works", "write_torchvision_standin"]

_INIT = '''"""TEST-ONLY torchvision stand-in (tests/integration/torchvision_standin.py): not the real torchvision."""
'''
_UTILS = '''"""TEST-ONLY stand-in for torchvision.utils: MONAI Label imports these for debug image dumps only."""


def make_grid(*args, **kwargs):
    raise NotImplementedError("TEST-ONLY torchvision stand-in of the MONAI Label integration tests")


def save_image(*args, **kwargs):
    raise NotImplementedError("TEST-ONLY torchvision stand-in of the MONAI Label integration tests")
'''


def real_torchvision_works() -> bool:
    """Whether an importable torchvision matches the installed torch (probed in a subprocess: a failing
    torchvision import can leave half-registered operators behind)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    probe = subprocess.run([sys.executable, "-c", "import torchvision.utils"], capture_output=True, check=False)
    return probe.returncode == 0


def write_torchvision_standin(folder: Path) -> Path:
    """Write the stand-in package ``torchvision`` into ``folder`` (to be put first on a path); returns ``folder``."""
    (folder / "torchvision").mkdir(parents=True)
    (folder / "torchvision" / "__init__.py").write_text(_INIT)
    (folder / "torchvision" / "utils.py").write_text(_UTILS)
    return folder
