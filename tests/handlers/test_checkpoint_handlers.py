"""TrainingCheckpoint / BestModelCheckpoint / TrainingHistory on tiny ignite engines."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events

from scse_monai.handlers import BestModelCheckpoint, TrainingCheckpoint, TrainingHistory, read_history


def _trainer(net: torch.nn.Module, opt: torch.optim.Optimizer) -> Engine:
    def step(engine: Engine, batch: torch.Tensor) -> dict:
        opt.zero_grad()
        loss = net(batch).pow(2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    return Engine(step)


def _setup(tmp_path, resume: bool = True, data_key: str = "fold0", best: BestModelCheckpoint | None = None,
           validate=None):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    trainer = _trainer(net, opt)
    if validate is not None:  # before the checkpoint, as ValidationHandler in train.json
        trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    save_dict = {"model": net, "optimizer": opt} | ({"best_model": best} if best is not None else {})
    checkpoint = TrainingCheckpoint(str(tmp_path), save_dict, run_data={"validate": data_key}, resume=resume)
    checkpoint.attach(trainer)
    return net, opt, trainer


def _epochs_run(trainer: Engine) -> list[int]:
    started: list[int] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: started.append(e.state.epoch))
    return started


def _interrupt_after(trainer: Engine, epoch: int) -> None:
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=epoch), lambda e: e.terminate())


def test_interrupted_run_resumes_after_saved_epoch(tmp_path) -> None:
    data = [torch.randn(4, 3) for _ in range(3)]
    net, _, trainer = _setup(tmp_path)
    _interrupt_after(trainer, 2)
    trainer.run(data, max_epochs=3)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["trainer"]["iteration"] == 6
    assert saved["run"]["epoch"] == 2 and saved["run"]["max_epochs"] == 3
    torch.testing.assert_close(saved["model"]["weight"], net.weight.detach())

    net2, opt2, trainer2 = _setup(tmp_path)
    epochs_run = _epochs_run(trainer2)
    trainer2.run(data, max_epochs=3)
    assert epochs_run == [3]  # epochs 1 and 2 were restored, not repeated
    assert opt2.state_dict()["state"][0]["step"] == 9  # Adam's step count continued from 6


def test_finished_run_is_not_resumed_a_new_run_trains_every_epoch(tmp_path, caplog) -> None:
    """What MONAI Label's /train does twice in a row: each request trains its max_epochs."""
    data = [torch.randn(4, 3)]
    _, _, trainer = _setup(tmp_path)
    trainer.run(data, max_epochs=2)
    _, opt2, trainer2 = _setup(tmp_path)
    epochs_run = _epochs_run(trainer2)
    with caplog.at_level("INFO", logger="scse_monai.handlers.checkpoint"):
        trainer2.run(data, max_epochs=2)
    assert epochs_run == [1, 2]
    assert opt2.state_dict()["state"][0]["step"] == 2
    assert "that run finished (epoch 2 of 2)" in caplog.text


@pytest.mark.parametrize(
    "resume, data_key, max_epochs, reason",
    [
        (False, "fold0", 3, "resume is off"),
        (True, "fold1", 3, "other data"),
        (True, "fold0", 1, "not below this run's max_epochs 1"),
    ],
)
def test_new_run_instead_of_resume(tmp_path, caplog, resume, data_key, max_epochs, reason) -> None:
    data = [torch.randn(4, 3)]
    _, _, trainer = _setup(tmp_path)
    _interrupt_after(trainer, 2)
    trainer.run(data, max_epochs=3)  # interrupted after epoch 2 of 3: resumable by the same run only
    _, _, trainer2 = _setup(tmp_path, resume=resume, data_key=data_key)
    epochs_run = _epochs_run(trainer2)
    with caplog.at_level("INFO", logger="scse_monai.handlers.checkpoint"):
        trainer2.run(data, max_epochs=max_epochs)
    assert epochs_run == list(range(1, max_epochs + 1))
    assert reason in caplog.text
    assert torch.load(tmp_path / "last.pt", weights_only=True)["run"]["epoch"] == max_epochs


def _evaluator(values: list[float]) -> Engine:
    evaluator = Engine(lambda e, b: None)
    evaluator.state.key_metric_name = "val_mean_dice"

    @evaluator.on(Events.EPOCH_COMPLETED)
    def _metric(engine: Engine) -> None:
        engine.state.metrics["val_mean_dice"] = values[engine.state.epoch - 1]

    return evaluator


def _validate(values: list[float], saver: BestModelCheckpoint, net: torch.nn.Module) -> list[float]:
    """Run the evaluator once per value; fill the weights with the value so model.pt shows which one it holds."""
    evaluator = _evaluator(values)
    saved_at: list[float] = []

    @evaluator.on(Events.EPOCH_STARTED)
    def _set_weights(engine: Engine) -> None:
        with torch.no_grad():
            net.weight.fill_(values[engine.state.epoch - 1])

    saver.attach(evaluator)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: saved_at.append(saver.best))
    evaluator.run([0], max_epochs=len(values))
    return saved_at


def _saved_weight(path) -> float:
    state = torch.load(path, weights_only=True)
    assert set(state) == {"weight", "bias"}  # a plain state_dict, as MONAI Label and bundles expect
    return float(state["weight"][0, 0])


def test_best_model_keeps_only_improvements_of_its_run(tmp_path) -> None:
    net = torch.nn.Linear(2, 2)
    assert _validate([0.5, 0.4, 0.7], BestModelCheckpoint(str(tmp_path), net), net) == [0.5, 0.5, 0.7]
    assert _saved_weight(tmp_path / "model.pt") == pytest.approx(0.7)
    # a new run never inherits the record: its first validation replaces model.pt although 0.3 < 0.7
    assert _validate([0.3, 0.2], BestModelCheckpoint(str(tmp_path), net), net) == [0.3, 0.3]
    assert _saved_weight(tmp_path / "model.pt") == pytest.approx(0.3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no record file, no temporaries


def test_best_model_nan_metric_ranks_below_numbers(tmp_path) -> None:
    net = torch.nn.Linear(2, 2)
    assert _validate([math.nan, 0.2, math.nan], BestModelCheckpoint(str(tmp_path), net), net)[1:] == [0.2, 0.2]
    assert _saved_weight(tmp_path / "model.pt") == pytest.approx(0.2)


def test_resumed_run_keeps_its_best_model_record(tmp_path) -> None:
    data = [torch.randn(4, 3)]
    state_dir, models = tmp_path / "state", tmp_path / "models"
    probe = torch.nn.Linear(2, 2)
    best = BestModelCheckpoint(str(models), probe)
    _, _, trainer = _setup(state_dir, best=best, validate=lambda e: _validate([0.8], best, probe))
    _interrupt_after(trainer, 1)
    trainer.run(data, max_epochs=3)

    best2 = BestModelCheckpoint(str(models), probe)
    _, _, trainer2 = _setup(state_dir, best=best2)
    trainer2.run(data, max_epochs=1 + 1)  # resumes epoch 2 of 2; the restored record is the 0.8 of epoch 1
    assert best2.best == pytest.approx(0.8)
    assert _validate([0.6], best2, probe) == [pytest.approx(0.8)]
    assert _saved_weight(models / "model.pt") == pytest.approx(0.8)


def test_history_records_loss_and_validation(tmp_path) -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    trainer = _trainer(net, opt)
    validator = Engine(lambda e, b: None)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate(engine: Engine) -> None:
        validator.state.epoch = engine.state.epoch
        validator.state.metrics = {"val_mean_dice": 0.1 * engine.state.epoch}

    TrainingHistory(str(tmp_path), validator=validator, optimizer=opt).attach(trainer)
    data = [torch.randn(4, 3) for _ in range(2)]
    trainer.run(data, max_epochs=2)
    history = read_history(tmp_path / "history.json")
    assert [h["epoch"] for h in history] == [1, 2]
    assert [round(h["val_mean_dice"], 6) for h in history] == [0.1, 0.2]
    assert all(h["loss"] > 0 and h["epoch_time_s"] >= 0 and h["lr"] == 0.01 for h in history)
