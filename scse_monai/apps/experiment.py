"""Train and evaluate through the repository's MONAI bundle, one ``bundle_root`` per run (for demo and ablate).

Everything goes through :class:`monai.bundle.ConfigWorkflow` on ``bundle/configs/train.json`` plus override files
(e.g. ``demo.json``; training writes ``<run>/models/model.pt``, selected on the validation fold,
``<run>/train_state/last.pt`` and ``<run>/eval/history.json``) and the same files plus ``evaluate.json``
(evaluation of ``model.pt`` on the test fold, which writes ``<run>/eval/chaos_metrics.json``): the experiments use
exactly the configs a user would run with ``python -m monai.bundle run``, only with overrides. The workflows log
through ``logging_quiet.conf`` (warnings only) so that progress bars stay readable.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scse_monai.bundle_paths import bundle_config
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_write_text

__all__ = [
    "SE_VARIANTS",
    "variant_overrides",
    "ablation_variants",
    "QUIET_LOGGING",
    "bundle_workflow",
    "train_run",
    "evaluate_run",
    "read_case_metrics",
    "case_groups",
    "compare_to_baseline",
    "summarise_seeds",
    "median_epoch_time",
    "prepare_run_dir",
    "silence_progress_bars",
    "training_finished",
]

#: ablation variant -> ``network_def#se`` spec (r = 2 everywhere, the TMI paper's choice, Table V).
SE_VARIANTS: dict[str, Any] = {
    "none": None,
    "cse": ["cse", {"r": 2}],
    "sse": "sse",
    "scse": ["scse", {"r": 2, "aggregation": "max"}],
    "scse_add": ["scse", {"r": 2, "aggregation": "add"}],
    "scse_mul": ["scse", {"r": 2, "aggregation": "mul"}],
    "scse_concat": ["scse", {"r": 2, "aggregation": "concat"}],
}



def variant_overrides(variant: str) -> dict[str, Any]:
    """Bundle overrides of an ablation variant.

    A variant is an SE kind of :data:`SE_VARIANTS` (at the bundle's placement), or ``placement_<name>``: the default
    scSE at one of the paper's placements (TMI §IV-B, Table IV; :data:`scse_monai.networks.PLACEMENT_VARIANTS`,
    e.g. ``placement_encoder`` for P1).

    Raises:
        InvalidInputError: for an unknown variant, listing the known ones.
    """
    if variant in SE_VARIANTS:
        return {"network_def#se": SE_VARIANTS[variant]}
    from scse_monai.networks import PLACEMENT_VARIANTS

    placement = variant.removeprefix("placement_")
    if variant.startswith("placement_") and placement in PLACEMENT_VARIANTS:
        return {"network_def#se": SE_VARIANTS["scse"], **PLACEMENT_VARIANTS[placement]}
    raise InvalidInputError(f"unknown variant {variant!r}; expected one of {ablation_variants()}")


def ablation_variants() -> list[str]:
    """Every variant name :func:`variant_overrides` knows: the SE kinds, then the placements."""
    from scse_monai.networks import PLACEMENT_VARIANTS

    return [*SE_VARIANTS, *(f"placement_{p}" for p in PLACEMENT_VARIANTS)]


#: the bundle's logging configuration for the experiments: warnings only.
QUIET_LOGGING = "logging_quiet.conf"


def bundle_workflow(
    configs: Sequence[str | os.PathLike],
    bundle_root: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    overrides: Mapping[str, Any],
):
    """A :class:`monai.bundle.ConfigWorkflow` on bundle config files (merged in order) with overrides.

    Args:
        configs: config names in ``bundle/configs`` (e.g. ``["train", "demo", "evaluate"]``) or paths of files.
        bundle_root: the run's folder (``models/`` and ``eval/`` are created inside).
        dataset_dir: folder of the converted ``datalist.json``.
        overrides: further config overrides (``"network_def#se"``, ``"seed"``, ``"fold"``, ...).
    """
    from monai.bundle import ConfigWorkflow

    files = [str(c) if Path(c).is_file() else str(bundle_config(str(c))) for c in configs]
    return ConfigWorkflow(
        config_file=files,
        meta_file=str(bundle_config("metadata")),
        logging_file=str(bundle_config(QUIET_LOGGING)),
        workflow_type="train",
        bundle_root=str(bundle_root),
        dataset_dir=str(dataset_dir),
        **dict(overrides),
    )


def _check_dataset(dataset_dir: Path) -> None:
    if not (dataset_dir / "datalist.json").is_file():
        raise InvalidInputError(
            "no datalist.json; expected the output folder of `scse-monai convert` (imagesTr/, labelsTr/, "
            "datalist.json)",
            dataset_dir,
        )


def silence_progress_bars(parser: Any, keys: Sequence[str] = ("train#handlers", "validate#handlers")) -> int:
    """Disable the ignite ``ProgressBar`` handlers in the handler lists ``keys`` of a bundle config.

    The bars print to stderr from inside the bundle's engines, so ``--quiet`` of ``demo``/``ablate`` must reach
    them through the config: each bar's ``tqdm`` gets ``disable=True`` before its engine runs (the bar creates its
    ``tqdm`` on the first iteration). The handlers are the instances the engines hold (the parser caches them).

    Args:
        parser: the workflow's :class:`monai.bundle.ConfigParser`.
        keys: the handler lists of the engines that will run (only those: parsing a list builds its handlers).

    Returns:
        The number of bars disabled.
    """
    from ignite.handlers import ProgressBar

    count = 0
    for key in keys:
        if key in parser:
            for handler in parser.get_parsed_content(key) or []:
                if isinstance(handler, ProgressBar):
                    handler.tqdm_kwargs["disable"] = True
                    count += 1
    return count


def _run(workflow, handlers: Sequence[Any] = (), progress_keys: Sequence[str] | None = None) -> None:
    """Run a bundle workflow; ``progress_keys``: handler lists whose progress bars to disable (None: none)."""
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise InvalidInputError(f"bundle workflow lacks required properties {missing}")
    if progress_keys:
        silence_progress_bars(workflow.parser, progress_keys)
    for handler in handlers:
        handler.attach(workflow.evaluator)
    workflow.run()
    workflow.finalize()


def training_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the newest training state in ``run_dir/train_state/`` records a run that reached its ``max_epochs``.

    Each network configuration keeps its own state file there (``last-<fingerprint>.pt``); a run folder of an
    experiment holds one.
    """
    from scse_monai.handlers import load_weights_only

    states = sorted((Path(run_dir) / "train_state").glob("last*.pt"), key=lambda p: p.stat().st_mtime)
    if not states:
        return False
    run = load_weights_only(states[-1]).get("run", {})
    return run.get("epoch") is not None and run["epoch"] >= run.get("max_epochs", math.inf)


def train_run(
    run_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    configs: Sequence[str | os.PathLike],
    overrides: Mapping[str, Any],
    progress: bool = True,
) -> None:
    """Train with ``train.json`` + ``configs`` in ``run_dir``: an interrupted run resumes, a finished one is kept.

    ``run_dir`` holds one setting (:func:`prepare_run_dir`); the bundle itself would start a finished run anew.
    ``progress=False`` disables the bundle's ignite progress bars (:func:`silence_progress_bars`).
    """
    _check_dataset(Path(dataset_dir))
    if training_finished(run_dir):
        return
    workflow = bundle_workflow(["train", *configs], run_dir, dataset_dir, overrides)
    _run(workflow, progress_keys=None if progress else ("train#handlers", "validate#handlers"))


def evaluate_run(
    run_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    configs: Sequence[str | os.PathLike],
    overrides: Mapping[str, Any],
    handlers: Sequence[Any] = (),
    progress: bool = True,
) -> Any:
    """Evaluate ``run_dir/models/model.pt`` on the test fold with ``train.json`` + ``configs`` + ``evaluate.json``.

    Args:
        run_dir: a trained run's ``bundle_root``.
        dataset_dir: folder of the converted ``datalist.json``.
        configs: the override files of the training.
        overrides: the overrides of the training.
        handlers: further ignite handlers attached to the bundle's evaluator before it runs (e.g. a
            :class:`scse_monai.apps.excitation_analysis.EvaluationCapture`).
        progress: ``False`` disables the bundle's ignite progress bar (:func:`silence_progress_bars`).

    Returns:
        The finished workflow: ``workflow.evaluator.network`` is the evaluated network (``model.pt`` loaded),
        ``workflow.parser`` the merged configuration.
    """
    _check_dataset(Path(dataset_dir))
    if not (Path(run_dir) / "models" / "model.pt").is_file():
        raise InvalidInputError("no models/model.pt; train this run first", run_dir)
    workflow = bundle_workflow(["train", *configs, "evaluate"], run_dir, dataset_dir, overrides)
    _run(workflow, handlers, progress_keys=None if progress else ("validate#handlers",))
    return workflow


def read_case_metrics(run_dir: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """Per-case CHAOS metrics of an evaluated run: ``{case: {organ | "mean": {metric: value}}}``.

    The one place that knows where the bundle's evaluation writes them (``eval/chaos_metrics.json``, whose
    ``"cases"`` it returns). Values stored as ``null`` (non-finite, e.g. the surface distance of an empty
    prediction) come back as NaN.

    Raises:
        InvalidInputError: when the run has no evaluation results.
    """
    path = Path(run_dir) / "eval" / "chaos_metrics.json"
    if not path.is_file():
        raise InvalidInputError("no eval/chaos_metrics.json; evaluate this run first", run_dir)
    cases = json.loads(path.read_text())["cases"]
    return {case: {organ: {k: math.nan if v is None else v for k, v in record.items()}
                   for organ, record in organs.items()} for case, organs in cases.items()}


def summarise_seeds(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One network's test results over seeds, as written to ``results.json``.

    Args:
        per_seed: ``{seed: per-case CHAOS metrics}`` (:func:`read_case_metrics` of each seed's run).

    Returns:
        ``{"per_case": per-case metrics averaged over seeds, "mean": their mean over cases per organ and overall,
        "per_seed": {seed: {"per_case", "mean"}}}``.
    """
    from scse_monai.apps.stats import average_over_seeds
    from scse_monai.metrics.chaos import summarise_cases

    per_case = average_over_seeds(per_seed)
    return {
        "per_case": per_case,
        "mean": summarise_cases(per_case),
        "per_seed": {str(s): {"per_case": c, "mean": summarise_cases(c)} for s, c in per_seed.items()},
    }


def case_groups(
    datalist: str | os.PathLike, fold: int, test_fold: int, modalities: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Case names of the training, validation and test groups (as in the datalist), checked to be disjoint.

    Args:
        datalist: the converter's ``datalist.json``.
        fold: the validation fold.
        test_fold: the test fold.
        modalities: the bundle's ``modalities`` selection (``None``: all).

    Raises:
        InvalidInputError: for an empty group or a case in two groups.
    """
    from scse_monai.data import SPLITS, select_split

    groups = {s: sorted(d["case"] for d in select_split(datalist, s, fold, test_fold, modalities, keys=("case",)))
              for s in SPLITS}
    seen: dict[str, str] = {}
    for split, cases in groups.items():
        for case in cases:
            if case in seen:
                raise InvalidInputError(f"case {case} is in the {seen[case]} and the {split} group", datalist)
            seen[case] = split
    return groups


def compare_to_baseline(networks: Mapping[str, Mapping[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Paired comparisons (:func:`scse_monai.apps.stats.compare_networks`) of every network against ``baseline``.

    Args:
        networks: ``{name: {"per_case": ...}}`` as written to ``results.json``.
        baseline: the reference network's name.

    Returns:
        The comparisons, each with ``"baseline"`` and ``"variant"`` names.
    """
    from scse_monai.apps.chaos.labels import ORGANS
    from scse_monai.apps.stats import compare_networks

    out = []
    for name, net in networks.items():
        if name != baseline:
            for c in compare_networks(networks[baseline]["per_case"], net["per_case"], list(ORGANS.values())):
                out.append({"baseline": baseline, "variant": name, **c})
    return out


def median_epoch_time(history: list[dict[str, Any]]) -> float:
    """Median ``epoch_time_s`` of a history (training + validation of one epoch); NaN for an empty history."""
    times = [e["epoch_time_s"] for e in history if e.get("epoch_time_s") is not None]
    return statistics.median(times) if times else math.nan


def prepare_run_dir(run_dir: str | os.PathLike, settings_json: str, marker: str = "run.json") -> None:
    """Keep a run folder written with the same settings (training resumes or is complete), replace one of others.

    The folder gets ``marker`` holding ``settings_json``; a folder without it is not ours and is never deleted.

    Raises:
        InvalidInputError: when ``run_dir`` exists without the marker.
    """
    run_dir = Path(run_dir)
    marker_path = run_dir / marker
    if run_dir.exists():
        if not marker_path.is_file():
            raise InvalidInputError(f"exists and holds no {marker} of scse-monai; choose another output folder",
                                    run_dir)
        if marker_path.read_text() == settings_json:
            return
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    atomic_write_text(marker_path, settings_json)
