"""Model-zoo conventions the zoo's CI and pre-commit hooks check, on the bundle as shipped (BUNDLE.md §5, §6.7).

verify_metadata, verify_net_in_out and ckpt_export run as the README's commands (test_bundle_readme_commands.py);
here: file format, declared packages, and the workflow property checks without any data present.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from ..conftest import BUNDLE, REPO

CONFIGS = BUNDLE / "configs"
JSON_CONFIGS = sorted(CONFIGS.glob("*.json"))
# MONAI's base requirements: the zoo pins them through monai_version / pytorch_version / numpy_version
BASE = {"monai", "torch", "numpy"}
# imported only for an optional output (DICOM SEG), with a clear error naming the extra when missing
OPTIONAL = {"highdicom"}


@pytest.mark.parametrize("path", JSON_CONFIGS, ids=lambda p: p.name)
def test_json_is_pretty_formatted_with_final_newline(path: Path) -> None:
    """pre-commit's end-of-file-fixer and pretty-format-json --indent=4 --no-sort-keys would leave it unchanged."""
    text = path.read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert json.dumps(json.loads(text), indent=4) + "\n" == text


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


def _distribution(module: str) -> str:
    (dist, *_) = _distributions()[module]
    return dist.lower().replace("_", "-")


def _config_modules() -> set[str]:
    """Top-level modules the configs import (``$import x``) or instantiate by dotted ``_target_``."""
    modules = set()
    for path in JSON_CONFIGS:
        text = path.read_text()
        modules |= set(re.findall(r'"\$import ([A-Za-z_]\w*)', text))
        modules |= {t.split(".")[0] for t in re.findall(r'"_target_": "([\w.]+)"', text) if "." in t}
        modules |= set(re.findall(r"\b(ignite|tqdm|tensorboard|scipy|nibabel|pydicom)\.", text))
    return modules - set(sys.stdlib_module_names)


def _core_modules() -> set[str]:
    """Top-level third-party modules that the package's core (what `scse-monai bundle` copies into scripts/) imports."""
    from scse_monai.bundle_paths import VENDORED_SKIP

    modules = set()
    for path in (REPO / "scse_monai").rglob("*.py"):
        if any(part in VENDORED_SKIP for part in path.relative_to(REPO / "scse_monai").parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"scse_monai"}


def test_metadata_declares_every_package_the_configs_use() -> None:
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    declared = {k.lower().replace("_", "-") for k in metadata["required_packages_version"]}
    used = {_distribution(m) for m in _config_modules()} - BASE
    # what the configs use indirectly: ignite's ProgressBar needs tqdm, TensorBoardStatsHandler needs tensorboard,
    # LoadImaged reads NIfTI with nibabel and DICOM series with pydicom, `python -m monai.bundle` needs fire
    used |= {"tqdm", "tensorboard", "nibabel", "pydicom", "fire", "scipy"}
    # scse_monai itself travels in the exported bundle's scripts/ (model-zoo's layout): what its core imports counts
    assert "scse-monai" in used and "scse-monai" not in declared
    used = (used - {"scse-monai"}) | {_distribution(m) for m in _core_modules() - OPTIONAL} - BASE
    assert "pytorch-ignite" in used
    assert used <= declared, f"not in required_packages_version: {sorted(used - declared)}"
    assert all(re.fullmatch(r"\d+(\.\d+)+", v) for v in metadata["required_packages_version"].values())


def test_pyproject_declares_every_package_the_code_imports() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project["dependencies"]}
    imported = set()
    for path in (REPO / "scse_monai").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    # the dicom extra's highdicom is imported lazily, only for DICOM SEG output (it may not be installed here)
    optional = {"highdicom"} & {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower()
                                for d in project["optional-dependencies"]["dicom"]}
    third_party = imported - set(sys.stdlib_module_names) - {"scse_monai"} - optional
    needed = {_distribution(m) for m in third_party}
    assert needed <= declared, f"imported but not declared in pyproject.toml: {sorted(needed - declared)}"


def test_inference_properties_check_without_data(tmp_path: Path) -> None:
    """The zoo's verify_bundle_properties builds the inference workflow with no data present: it must not raise."""
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(tmp_path),
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    # the missing input is an error when the workflow runs, naming the folder it looked at
    with pytest.raises(Exception) as info:
        workflow.run()
    chain, err = [], info.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__ or err.__context__
    assert any(str(tmp_path / "data") in line and "no such file or folder" in line for line in chain), chain
