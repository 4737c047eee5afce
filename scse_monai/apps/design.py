"""The one validator of an experiment's design (``scse-monai ablate``, the demo's seeds), before anything runs.

An experiment that runs must mean what its report says. So, before the first run:

- folds are per patient: every sequence (case) of a patient sits in one fold of the datalist, else the nested
  cross-validation by patient trains and tests on one patient (the converter writes ``"patient"`` per entry);
- nothing is counted twice: no duplicate test fold, variant (or two variant names with the same overrides) or seed;
- seeds are integers in ``[0, 2**32)``, the range of MONAI's ``set_determinism`` (which takes them modulo ``2**32``,
  so ``-1`` and ``4294967295`` would be one run reported as two replicates);
- every override key exists in the parsed bundle configuration (:class:`monai.bundle.ConfigParser` of
  ``train.json``, the override files and ``evaluate.json``), and none is one the experiment sets per run (``seed``,
  ``fold``, ``test_fold``, the variant's keys): an override that changes nothing must not be recorded as applied.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scse_monai.errors import InvalidInputError

__all__ = ["SEED_RANGE", "check_seeds", "check_patient_folds", "check_override_keys", "check_ablation_design"]

#: seeds MONAI's ``set_determinism`` keeps apart (it reduces them modulo 2**32).
SEED_RANGE = (0, 2**32)
#: override keys an ablation sets itself for every run.
_PER_RUN_KEYS = ("seed", "fold", "test_fold")


def _duplicates(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    dups: list[Any] = []
    for v in values:
        if v in seen and v not in dups:
            dups.append(v)
        seen.append(v)
    return dups


def check_seeds(seeds: Sequence[Any], what: str = "--seeds") -> list[int]:
    """``seeds`` as a list after checking: one or more distinct integers in :data:`SEED_RANGE`.

    Raises:
        InvalidInputError: naming ``what`` and the offending values.
    """
    seeds = list(seeds)
    lo, hi = SEED_RANGE
    if not seeds:
        raise InvalidInputError(f"{what} is empty; expected one or more distinct seeds")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not lo <= s < hi]
    if bad:
        raise InvalidInputError(f"{what} {bad}: expected integers from {lo} to {hi - 1} (MONAI takes seeds modulo "
                                f"2**32, so others would repeat a seed)")
    if dups := _duplicates(seeds):
        raise InvalidInputError(f"{what} {seeds} repeats {dups}; expected distinct seeds (a repeated seed is the "
                                "same run counted twice)")
    return seeds


def check_patient_folds(datalist: str | os.PathLike) -> None:
    """Refuse a datalist whose training entries put one patient into two folds.

    The patient is an entry's ``"patient"`` (written by ``scse-monai convert``), else its ``"case"``.

    Raises:
        InvalidInputError: naming the datalist, the patient, its cases and their folds.
    """
    from scse_monai.data import datalist_entries

    folds: dict[str, dict[str, Any]] = {}
    for entry in datalist_entries(datalist, ("training",)):
        patient = str(entry.get("patient") if entry.get("patient") is not None else entry["case"])
        folds.setdefault(patient, {})[entry["case"]] = entry.get("fold")
    for patient, cases in folds.items():
        if len(set(map(str, cases.values()))) > 1:
            listed = ", ".join(f"{c} in fold {f}" for c, f in sorted(cases.items()))
            raise InvalidInputError(
                f"patient {patient} is in more than one fold ({listed}); expected every case of a patient in one "
                "fold (cross-validation by patient), as `scse-monai convert` assigns them", datalist)


def _config_files(configs: Sequence[str | os.PathLike]) -> list[str]:
    from scse_monai.bundle_paths import bundle_config

    names = ["train", *configs, "evaluate"]
    return [str(c) if Path(c).is_file() else str(bundle_config(str(c))) for c in names]


def check_override_keys(overrides: Mapping[str, Any], configs: Sequence[str | os.PathLike] = (),
                        reserved: Mapping[str, str] | None = None) -> None:
    """Refuse override keys that no bundle config has, or that the experiment sets itself.

    Args:
        overrides: ``{"network_def#channels": [...], ...}`` as given on the command line.
        configs: the override files merged onto ``train.json`` (``evaluate.json`` is merged last).
        reserved: ``{key: the option that sets it}`` for keys the experiment sets per run.

    Raises:
        InvalidInputError: naming the key (and, for an unknown one, the keys at that level).
    """
    from monai.bundle import ConfigParser

    for key, option in (reserved or {}).items():
        if key in overrides:
            raise InvalidInputError(f"override {key!r} is set by the experiment for every run; use {option} instead")
    if not overrides:
        return
    parser = ConfigParser()
    parser.read_config(_config_files(configs))
    for key in overrides:
        if key not in parser:
            parent, _, _ = str(key).replace("::", "#").rpartition("#")
            level = parser[parent] if parent and parent in parser else parser.get()
            known = sorted(str(k) for k in level) if isinstance(level, dict) else []
            where = f"under {parent!r}" if parent else "at the top level"
            hint = (f"keys {where}: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}" if known else
                    f"{parent!r} is a value, not a section")
            raise InvalidInputError(f"override {key!r} is not a key of the bundle configuration (train.json + "
                                    f"{list(configs)} + evaluate.json); {hint}")


def check_ablation_design(
    datalist: str | os.PathLike,
    variants: Sequence[str],
    folds: Sequence[int] | None,
    seeds: Sequence[int],
    configs: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
) -> tuple[list[int], list[int]]:
    """Check an ablation's design completely (see the module docstring) before any run.

    Args:
        datalist: the converted ``datalist.json``.
        variants: variant names (:func:`scse_monai.apps.experiment.ablation_variants`).
        folds: test folds, or ``None`` for all.
        seeds: training seeds.
        configs: bundle override files.
        overrides: bundle overrides shared by all runs.

    Returns:
        ``(all folds of the datalist, the test folds)``.

    Raises:
        InvalidInputError: naming the option, file or key at fault.
    """
    from scse_monai.apps.experiment import ablation_variants, variant_overrides
    from scse_monai.data import datalist_folds

    known = ablation_variants()
    unknown = [v for v in variants if v not in known]
    if unknown or not variants:
        raise InvalidInputError(f"--variants {unknown or list(variants)}; expected some of {known}")
    if dups := _duplicates(variants):
        raise InvalidInputError(f"--variants {list(variants)} repeats {dups}; expected distinct variants")
    same = _duplicates(repr(sorted(variant_overrides(v).items())) for v in variants)
    if same:
        names = [v for v in variants if repr(sorted(variant_overrides(v).items())) == same[0]]
        raise InvalidInputError(f"--variants {names} are the same network (overrides {variant_overrides(names[0])}); "
                                "expected distinct variants")
    check_seeds(seeds)
    datalist = Path(datalist)
    if not datalist.is_file():
        raise InvalidInputError("no datalist.json; expected the output folder of `scse-monai convert`",
                                datalist.parent)
    available = datalist_folds(datalist)
    if len(available) < 3:
        raise InvalidInputError(
            f"the datalist has folds {available}; nested cross-validation needs three or more (training, validation, "
            "test): convert with --folds 3 or more", datalist.parent)
    chosen = list(available if folds is None else folds)
    if not chosen or any(f not in available for f in chosen):
        raise InvalidInputError(f"--folds {chosen}; the datalist has folds {available}", datalist.parent)
    if dups := _duplicates(chosen):
        raise InvalidInputError(f"--folds {chosen} repeats {dups}; expected each test fold once")
    check_patient_folds(datalist)
    reserved = {"seed": "--seeds", "fold": "--folds (the validation fold follows the test fold)",
                "test_fold": "--folds"}
    for v in variants:
        reserved.update(dict.fromkeys(variant_overrides(v), "--variants"))
    check_override_keys(overrides or {}, configs, reserved)
    return available, chosen
