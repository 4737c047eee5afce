"""Model-zoo's CI checks that need no GPU and no internet, on an exported bundle, as the zoo's scripts run them.

Usage: ``python tests/bundle/model_zoo_checks.py BUNDLE_DIR`` (``scse-monai bundle BUNDLE_DIR`` first; weights are made
here as the zoo's ``_produce_fake_weights`` makes them). It follows ``ci/verify_bundle.py`` of Project-MONAI/model-zoo
(dfae206d): the bundle root goes first on ``sys.path``, then the directory check (``configs/metadata.json``,
``LICENSE``, ``models/model.pt``, ``configs/inference.json``), version and changelog, ``verify_metadata`` against the
schema placed in ``eval/schema.json`` (``ci/prepare_schema.py`` downloads it; the bundle ships a copy), and of the
full mode ``verify_net_in_out`` and ``ckpt_export`` with model-zoo's defaults, for the 2D bundle and its 3D variant
(``configs/metadata_3d.json``). ``ci/get_bundle_requirements.py``'s requirements file is written to
``requirements_bundle.txt``. Prints one JSON object: the check names and ``"ok"`` or the error, and where
``scse_monai`` was imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback


def requirements(metadata: dict) -> list[str]:
    """What ``ci/get_bundle_requirements.py`` pins for a bundle (ALLOW_MONAI_RC off)."""
    libs = [f"monai=={metadata['monai_version']}", f"torch=={metadata['pytorch_version']}",
            f"numpy=={metadata['numpy_version']}"]
    for key in ("optional_packages_version", "required_packages_version"):
        libs += [f"{name}=={version}" for name, version in metadata.get(key, {}).items()]
    return libs


def main(bundle: str) -> dict:
    sys.path = [bundle, *sys.path]  # as ci/verify_bundle.py's verify() does
    import torch
    from monai.bundle import ConfigParser, ckpt_export, verify_metadata, verify_net_in_out

    configs = os.path.join(bundle, "configs")
    metadata = json.load(open(os.path.join(configs, "metadata.json")))
    results: dict[str, str] = {}
    two_d = [os.path.join(configs, "inference.json")]
    three_d = [*two_d, os.path.join(configs, "inference_3d.json")]

    def check(name, fn):
        try:
            fn()
            results[name] = "ok"
        except Exception as e:  # noqa: BLE001 -- every failure is a result to report
            results[name] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"

    def fake_weights(config_files, meta, target):
        def make():
            parser = ConfigParser()
            parser.read_config(config_files)
            parser.read_meta(os.path.join(configs, meta))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            torch.save(parser.get_parsed_content("network_def").state_dict(), target)
        return make

    def directory():
        for file in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
            if not os.path.exists(os.path.join(bundle, file)):
                raise ValueError(f"necessary file {file} is not existing.")

    def version():
        if metadata["version"] not in metadata["changelog"]:
            raise ValueError(f"version number: {metadata['version']} is missing in 'changelog'")

    def schema():
        os.makedirs(os.path.join(bundle, "eval"), exist_ok=True)
        shutil.copy(os.path.join(bundle, "docs", "meta_schema_20240725.json"), os.path.join(bundle, "eval/schema.json"))
        for meta in ("metadata.json", "metadata_3d.json"):
            verify_metadata(meta_file=os.path.join(configs, meta), filepath=os.path.join(bundle, "eval/schema.json"))

    def shape(config_files, meta):
        return lambda: verify_net_in_out(net_id="network_def", meta_file=os.path.join(configs, meta),
                                         config_file=config_files, bundle_root=bundle)

    def torchscript(config_files, meta, weights, ts):
        def export():
            ckpt_export(net_id="network_def", filepath=os.path.join(bundle, "models", ts), ckpt_file=weights,
                        meta_file=os.path.join(configs, meta), config_file=config_files, bundle_root=bundle)
            extra = {"metadata.json": ""}
            torch.jit.load(os.path.join(bundle, "models", ts), _extra_files=extra)
            if json.loads(extra["metadata.json"])["name"] != json.load(open(os.path.join(configs, meta)))["name"]:
                raise ValueError(f"{ts} carries another metadata file than {meta}")
        return export

    weights_2d, weights_3d = os.path.join(bundle, "models", "model.pt"), os.path.join(bundle, "models_3d", "model.pt")
    check("fake weights (network_def's state dict)", fake_weights(two_d, "metadata.json", weights_2d))
    check("fake weights 3D", fake_weights(three_d, "metadata_3d.json", weights_3d))
    check("verify_bundle_directory", directory)
    check("version in changelog", version)
    check("verify_metadata (metadata.json, metadata_3d.json)", schema)
    check("verify_net_in_out 2D (n=1)", shape(two_d, "metadata.json"))
    check("verify_net_in_out 3D (n=1)", shape(three_d, "metadata_3d.json"))
    check("ckpt_export 2D", torchscript(two_d, "metadata.json", weights_2d, "verify_model.ts"))
    check("ckpt_export 3D with metadata_3d.json",
          torchscript(three_d, "metadata_3d.json", weights_3d, "verify_model_3d.ts"))
    with open(os.path.join(bundle, "requirements_bundle.txt"), "w") as f:
        f.write("".join(f"{line}\n" for line in requirements(metadata)))
    results["scse_monai imported from"] = sys.modules["scse_monai"].__file__ if "scse_monai" in sys.modules else ""
    return results


if __name__ == "__main__":
    print(json.dumps(main(os.path.abspath(sys.argv[1]))))
