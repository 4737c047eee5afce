"""``demo``/``ablate`` ``--quiet`` reaches the bundle's ignite progress bars: ``progress=False`` silences them."""

from __future__ import annotations

from pathlib import Path

from scse_monai.apps.experiment import evaluate_run, train_run


def test_progress_false_silences_the_bundle_progress_bars(phantom_data: Path, tmp_path: Path, capfd) -> None:
    """ignite's bars print ``train[i/n]`` per iteration and ``evaluate[k/m]`` over the cases (train/evaluate.json);
    one evaluation with bars shows what the others would print."""
    run = tmp_path / "run"
    overrides = {"seed": 0}
    train_run(run, phantom_data, ["demo_quick"], overrides, progress=False)
    quiet_train = capfd.readouterr().err
    evaluate_run(run, phantom_data, ["demo_quick"], overrides, progress=True)
    loud_eval = capfd.readouterr().err
    evaluate_run(run, phantom_data, ["demo_quick"], overrides, progress=False)
    quiet_eval = capfd.readouterr().err
    assert (run / "models" / "model.pt").is_file() and (run / "eval" / "chaos_metrics.json").is_file()
    assert "evaluate[" in loud_eval and "%|" in loud_eval  # the bar, so the checks below can fail
    assert "evaluate[" not in quiet_eval and "%|" not in quiet_eval, quiet_eval[-2000:]
    assert "train[" not in quiet_train and "%|" not in quiet_train, quiet_train[-2000:]
