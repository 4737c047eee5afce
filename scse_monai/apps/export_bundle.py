"""``scse-monai bundle DIR``: write a ready-to-use copy of the MONAI bundle that ships with the package.

The copy (``LICENSE``, ``configs/``, ``docs/``) runs with ``python -m monai.bundle run training --bundle_root DIR``
and serves from MONAI Label's ``<app>/model/<name>_segmentation/`` (MONAI Label takes the task type from the folder
name). Nothing is overwritten: ``DIR`` must be new or empty and outside the bundle it copies (a symlink to an empty
folder is followed); :func:`scse_monai.utils.output_dir.check_output_dir` is the one guard of output folders.
"""

from __future__ import annotations

import argparse

from scse_monai.bundle_paths import export_bundle

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scse-monai bundle``."""
    parser.add_argument("dest", help="new (or empty) folder for the bundle, e.g. apps/monaibundle/model/"
                                     "scse_chaos_segmentation")


def run(args: argparse.Namespace) -> int:
    """Write the copy and print the commands to use it."""
    dest = export_bundle(args.dest)
    print(f"wrote the MONAI bundle to {dest}")
    print(f"  train:  python -m monai.bundle run training --meta_file {dest}/configs/metadata.json "
          f"--config_file {dest}/configs/train.json --logging_file {dest}/configs/logging.conf "
          f"--bundle_root {dest} --dataset_dir DATA")
    print(f"  verify: python -m monai.bundle verify_metadata --meta_file {dest}/configs/metadata.json "
          f"--filepath {dest}/docs/meta_schema_20240725.json")
    return 0
