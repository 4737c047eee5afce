"""Find the cases of a CHAOS root as the organisers distribute it.

Accepted roots (Kavur et al. 2021; Zenodo record 3362845): a folder holding ``CHAOS_Train_Sets/Train_Sets/``,
``Train_Sets/`` and/or the ``Test_Sets`` equivalents, or a ``Train_Sets``/``Test_Sets`` folder itself. Below each::

    CT/<id>/DICOM_anon/*.dcm                                  + CT/<id>/Ground/*.png
    MR/<id>/T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm        + MR/<id>/T1DUAL/Ground/*.png (one stack, both phases)
    MR/<id>/T2SPIR/DICOM_anon/*.dcm                           + MR/<id>/T2SPIR/Ground/*.png

The series folders and case names are defined once, in :mod:`scse_monai.data.naming` (batch inference names its
predictions by the same case names). Test sets have no Ground: their cases are image-only. Discovery only looks at
folder names; it does not check the files (the converter does, per case, so that one broken case does not stop the
others).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from scse_monai.apps.chaos.io import natural_key
from scse_monai.data.naming import CHAOS_ID, chaos_case_name, chaos_series_dir
from scse_monai.errors import InvalidInputError

__all__ = ["ChaosCase", "MODALITIES", "discover_cases", "find_set_roots"]

logger = logging.getLogger(__name__)

#: converter ``modality`` choices -> the case modalities they select.
MODALITIES: dict[str, tuple[str, ...]] = {
    "ct": ("ct",),
    "t1dual": ("t1dual_in", "t1dual_out"),
    "t2spir": ("t2spir",),
    "all": ("ct", "t1dual_in", "t1dual_out", "t2spir"),
}

_SET_NAMES = {"Train_Sets": "train", "Test_Sets": "test"}
_EXPECTED = (
    "expected a CHAOS root: CHAOS_Train_Sets/Train_Sets/, Train_Sets/ or Test_Sets/ (or such a folder itself) "
    "holding CT/<id>/DICOM_anon and/or MR/<id>/{T1DUAL,T2SPIR}/DICOM_anon"
)


@dataclass(frozen=True)
class ChaosCase:
    """One image series of a CHAOS root (one converter case).

    Attributes:
        case: output case id: ``ct_<id>``, ``mr_<id>_t2spir``, ``mr_<id>_t1dual_in`` or ``mr_<id>_t1dual_out``.
        modality: ``"ct"``, ``"t2spir"``, ``"t1dual_in"`` or ``"t1dual_out"``.
        patient: ``ct_<id>`` or ``mr_<id>`` (all MR sequences of one id are one patient).
        chaos_id: the case folder name, e.g. ``"1"``.
        split: ``"train"`` (Ground expected) or ``"test"`` (image only).
        dicom_dir: folder of the DICOM slices.
        ground_dir: folder of the Ground PNGs (it may be missing on disk: the converter reports it); ``None`` for
            test cases.
        source: ``dicom_dir`` relative to the root given to :func:`discover_cases`, POSIX style.
    """

    case: str
    modality: str
    patient: str
    chaos_id: str
    split: str
    dicom_dir: Path
    ground_dir: Path | None
    source: str


def find_set_roots(root: str | os.PathLike) -> list[tuple[Path, str]]:
    """The ``Train_Sets``/``Test_Sets`` folders under ``root`` with their split (``"train"``/``"test"``)."""
    root = Path(root)
    found: list[tuple[Path, str]] = []
    if root.name in _SET_NAMES and _has_modality_dirs(root):
        return [(root, _SET_NAMES[root.name])]
    for name, split in _SET_NAMES.items():
        for candidate in (root / name, root / f"CHAOS_{name}" / name):
            if candidate.is_dir() and _has_modality_dirs(candidate):
                found.append((candidate, split))
    if not found and _has_modality_dirs(root):
        # A renamed set folder: a case with Ground anywhere means training data.
        has_ground = any(root.glob("CT/*/Ground")) or any(root.glob("MR/*/*/Ground"))
        found.append((root, "train" if has_ground else "test"))
    return found


def _has_modality_dirs(folder: Path) -> bool:
    return (folder / "CT").is_dir() or (folder / "MR").is_dir()


def _case_dirs(folder: Path) -> list[Path]:
    try:
        if not folder.is_dir():
            return []
        entries = sorted(folder.iterdir(), key=natural_key)
        entries = [p for p in entries if not p.name.startswith(".") and p.is_dir()]
    except OSError as e:
        raise InvalidInputError(f"cannot read folder ({e.strerror or e}); expected a readable CHAOS folder", folder) \
            from e
    dirs = []
    for p in entries:
        if not CHAOS_ID.fullmatch(p.name):
            logger.warning("%s: skipped: case folder names are CHAOS ids (letters, digits, '_' or '-')", p)
            continue
        dirs.append(p)
    return dirs


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def discover_cases(root: str | os.PathLike) -> list[ChaosCase]:
    """List every case of a CHAOS root: CT cases, then MR cases (T1DUAL in, T1DUAL out, T2SPIR per id).

    Every MR id yields its three series; a missing sequence folder is reported when that case is converted.

    Args:
        root: the CHAOS root (see the module docstring for the accepted layouts).

    Returns:
        The cases, train before test, CT before MR, ids in natural order.

    Raises:
        InvalidInputError: if ``root`` is not a folder or nothing CHAOS-like is found below it; the message names the
            root and the expected layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"not a folder; {_EXPECTED}", root)
    cases: list[ChaosCase] = []
    for set_root, split in find_set_roots(root):
        train = split == "train"
        for d in _case_dirs(set_root / "CT"):
            dicom = chaos_series_dir(set_root, "ct", d.name)
            cases.append(
                ChaosCase(
                    case=chaos_case_name("ct", d.name),
                    modality="ct",
                    patient=f"ct_{d.name}",
                    chaos_id=d.name,
                    split=split,
                    dicom_dir=dicom,
                    ground_dir=d / "Ground" if train else None,
                    source=_rel(dicom, root),
                )
            )
        for d in _case_dirs(set_root / "MR"):
            series = (
                ("t1dual_in", d / "T1DUAL" / "Ground"),
                ("t1dual_out", d / "T1DUAL" / "Ground"),
                ("t2spir", d / "T2SPIR" / "Ground"),
            )
            for modality, ground in series:
                dicom = chaos_series_dir(set_root, modality, d.name)
                cases.append(
                    ChaosCase(
                        case=chaos_case_name(modality, d.name),
                        modality=modality,
                        patient=f"mr_{d.name}",
                        chaos_id=d.name,
                        split=split,
                        dicom_dir=dicom,
                        ground_dir=ground if train else None,
                        source=_rel(dicom, root),
                    )
                )
    if not cases:
        raise InvalidInputError(f"no CHAOS case found; {_EXPECTED}", root)
    seen: set[tuple[str, str]] = set()
    for c in cases:
        if (c.split, c.case) in seen:
            raise InvalidInputError(f"case {c.case} found twice in the {c.split} sets; {_EXPECTED}", root)
        seen.add((c.split, c.case))
    return cases
