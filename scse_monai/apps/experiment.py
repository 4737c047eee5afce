"""Train and evaluate through the repository's MONAI bundle, one ``bundle_root`` per run (for demo and ablate).

Everything goes through :class:`monai.bundle.ConfigWorkflow` on ``bundle/configs/train.json`` (training, which writes
``<run>/models/model.pt``, ``<run>/train_state/last.pt`` and ``<run>/eval/history.json``) and ``[train.json,
evaluate.json]`` (evaluation of ``model.pt`` on the validation fold, which writes ``<run>/eval/chaos_metrics.json``):
the experiments use exactly the configs a user would run with ``python -m monai.bundle run``, only with overrides.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scse_monai.bundle_paths import bundle_config
from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_write_text

__all__ = [
    "SE_VARIANTS",
    "RunResult",
    "quiet_logging",
    "bundle_workflow",
    "train_run",
    "evaluate_run",
    "bundle_parser",
    "build_network",
    "load_run",
    "median_epoch_time",
    "prepare_run_dir",
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

# Loggers whose INFO output (per-iteration losses, handler messages) would bury the progress bars.
_NOISY = ("monai", "ignite", "scse_monai", "StatsHandler", "py.warnings")


@contextlib.contextmanager
def quiet_logging(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of MONAI/ignite/bundle loggers for the duration (progress bars stay visible)."""
    import monai.handlers  # noqa: F401  (MONAI modules create their INFO loggers on import: import them first)
    import monai.inferers  # noqa: F401
    loggers = [logging.getLogger(n) for n in _NOISY] + [
        logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith(_NOISY)
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.level))
    # ConfigWorkflow warns that logging_file=False skips its logging set-up; that is the point here.
    bundle_logger = logging.getLogger("monai.bundle.workflows")
    saved.append((bundle_logger, bundle_logger.level))
    bundle_logger.setLevel(logging.ERROR)
    # StatsHandler re-levels loggers to INFO and adds its own stdout handler while the workflow is built, which
    # per-logger levels cannot anticipate; a global threshold does.
    disabled = logging.root.manager.disable
    logging.disable(max(disabled, level - 1))
    try:
        yield
    finally:
        logging.disable(disabled)
        for lg, lvl in saved:
            lg.setLevel(lvl)


def bundle_workflow(
    configs: list[str], bundle_root: str | os.PathLike, dataset_dir: str | os.PathLike, overrides: Mapping[str, Any]
):
    """A :class:`monai.bundle.ConfigWorkflow` on the repository's bundle configs with overrides.

    Args:
        configs: config names in ``bundle/configs`` (e.g. ``["train"]`` or ``["train", "evaluate"]``).
        bundle_root: the run's folder (``models/`` and ``eval/`` are created inside).
        dataset_dir: folder of the converted ``datalist.json``.
        overrides: further config overrides (``"network_def#se"``, ``"epochs"``, ...).
    """
    from monai.bundle import ConfigWorkflow

    files = [str(bundle_config(c)) for c in configs]
    return ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(bundle_config("metadata")),
        logging_file=False,  # keep the caller's logging; the bundle's logging.conf prints every iteration
        workflow_type="train",
        bundle_root=str(bundle_root),
        dataset_dir=str(dataset_dir),
        **dict(overrides),
    )


def _run(workflow) -> None:
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise InvalidInputError(f"bundle workflow lacks required properties {missing}")
    workflow.run()
    workflow.finalize()


def _check_dataset(dataset_dir: Path) -> None:
    if not (dataset_dir / "datalist.json").is_file():
        raise InvalidInputError(
            "no datalist.json; expected the output folder of `scse-monai convert` (imagesTr/, labelsTr/, "
            "datalist.json)",
            dataset_dir,
        )


def training_finished(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir/train_state/last.pt`` records a training run that reached its ``max_epochs``."""
    from scse_monai.handlers import load_weights_only

    state = Path(run_dir) / "train_state" / "last.pt"
    if not state.is_file():
        return False
    run = load_weights_only(state).get("run", {})
    return run.get("epoch") is not None and run["epoch"] >= run.get("max_epochs", math.inf)


def train_run(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike, overrides: Mapping[str, Any]) -> None:
    """Train with ``train.json`` in ``run_dir``: an interrupted run resumes, a finished one is kept as it is.

    ``run_dir`` holds one setting (:func:`prepare_run_dir`); the bundle itself would start a finished run anew.
    """
    _check_dataset(Path(dataset_dir))
    if training_finished(run_dir):
        return
    with quiet_logging():
        _run(bundle_workflow(["train"], run_dir, dataset_dir, overrides))


def evaluate_run(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike, overrides: Mapping[str, Any]) -> dict:
    """Evaluate ``run_dir/models/model.pt`` with ``[train.json, evaluate.json]``; returns ``chaos_metrics.json``."""
    _check_dataset(Path(dataset_dir))
    if not (Path(run_dir) / "models" / "model.pt").is_file():
        raise InvalidInputError("no models/model.pt; train this run first", run_dir)
    with quiet_logging():
        _run(bundle_workflow(["train", "evaluate"], run_dir, dataset_dir, overrides))
    return json.loads((Path(run_dir) / "eval" / "chaos_metrics.json").read_text())


def bundle_parser(overrides: Mapping[str, Any], config: str = "train"):
    """A :class:`monai.bundle.ConfigParser` on one of the bundle's configs with ``overrides`` applied."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_config(config)))
    parser.update(dict(overrides))
    return parser


def build_network(overrides: Mapping[str, Any], config: str = "train"):
    """The bundle's ``network_def`` with the ``network_def#...`` (and other) overrides applied, on the CPU."""
    return bundle_parser(overrides, config).get_parsed_content("network_def", instantiate=True)


@dataclass
class RunResult:
    """What one trained and evaluated run left in its folder.

    Attributes:
        name: run label (e.g. ``"UNet"``).
        run_dir: its ``bundle_root``.
        history: per-epoch records of ``eval/history.json``.
        metrics: ``eval/chaos_metrics.json`` (``{"cases": ..., "mean": {organ: {metric: value}}}``).
        parameters: parameter count of the network.
        se_parameters: parameters in SE layers.
    """

    name: str
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    se_parameters: int = 0

    @property
    def mean(self) -> dict[str, dict[str, float]]:
        """Mean CHAOS metrics over the evaluated cases, per organ and ``"mean"``."""
        return self.metrics.get("mean", {})


def load_run(name: str, run_dir: str | os.PathLike, network=None) -> RunResult:
    """Read a run's ``history.json`` and ``chaos_metrics.json`` (and count ``network``'s parameters if given)."""
    from scse_monai.handlers import read_history
    from scse_monai.networks import count_parameters, count_se_parameters

    run_dir = Path(run_dir)
    hist, metrics = run_dir / "eval" / "history.json", run_dir / "eval" / "chaos_metrics.json"
    result = RunResult(name=name, run_dir=run_dir)
    if hist.is_file():
        result.history = read_history(hist)
    if metrics.is_file():
        result.metrics = json.loads(metrics.read_text())
    if network is not None:
        result.parameters, result.se_parameters = count_parameters(network), count_se_parameters(network)
    return result


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
