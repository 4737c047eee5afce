"""Model-zoo's CI on the bundle that `scse-monai bundle DIR` writes: the checks that need no GPU and no internet, and
the resolution of its dependency install step (BUNDLE.md §5.5; model_zoo_checks.py follows ci/verify_bundle.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import BUNDLE

CHECKS = Path(__file__).with_name("model_zoo_checks.py")
CONFIGS = BUNDLE / "configs"


def test_exported_bundle_passes_model_zoo_checks_with_its_own_code(tmp_path: Path) -> None:
    dest = tmp_path / "scse_chaos_segmentation"
    subprocess.run([sys.executable, "-m", "scse_monai", "bundle", str(dest)], check=True, capture_output=True,
                   text=True, timeout=300)
    work = tmp_path / "elsewhere"  # the zoo runs from its repository root, not from the bundle
    work.mkdir()
    proc = subprocess.run([sys.executable, str(CHECKS), str(dest)], cwd=work, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    origin = results.pop("scse_monai imported from")
    assert results and all(v == "ok" for v in results.values()), {k: v for k, v in results.items() if v != "ok"}
    # the configs ran on the bundle's own copy of the package (scripts/, model-zoo's layout), not an installed one
    assert Path(origin).resolve() == (dest / "scripts" / "scse_monai" / "__init__.py").resolve()
    assert not (dest / "scripts" / "scse_monai" / "apps").exists()
    requirements = (dest / "requirements_bundle.txt").read_text().split()
    assert "monai==1.6.1" in requirements and not any(r.startswith("scse") for r in requirements)


def test_dependency_install_step_resolves(tmp_path: Path) -> None:
    """What the zoo's `pip install -r requirements_<bundle>.txt` would install resolves, for its Python 3.10."""
    sys.path.insert(0, str(CHECKS.parent))
    try:
        from model_zoo_checks import requirements
    finally:
        sys.path.remove(str(CHECKS.parent))
    req = tmp_path / "requirements.txt"
    req.write_text("".join(f"{r}\n" for r in requirements(json.loads((CONFIGS / "metadata.json").read_text()))))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(tmp_path / "report.json"), "--target", str(tmp_path / "never"), "--python-version", "3.10",
         "--only-binary=:all:", "-r", str(req)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = {i["metadata"]["name"].lower() for i in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert {"monai", "torch", "nibabel", "pydicom", "pytorch-ignite", "scipy", "fire"} <= installed
    assert not (tmp_path / "never").exists()


def test_metadata_3d_is_metadata_json_with_the_3d_shapes() -> None:
    """One definition: the 3D metadata file (a whole file, as ckpt_export takes one) differs from metadata.json only
    in its name, description and spatial shapes."""
    two_d = json.loads((CONFIGS / "metadata.json").read_text())
    three_d = json.loads((CONFIGS / "metadata_3d.json").read_text())
    for meta in (two_d, three_d):
        for part, key in (("inputs", "image"), ("outputs", "pred")):
            meta["network_data_format"][part][key].pop("spatial_shape")
        meta.pop("name"), meta.pop("description")
    assert three_d == two_d
