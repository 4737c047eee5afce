"""TrainingCheckpoint / BestModelSaver / TrainingHistory on tiny ignite engines."""

from __future__ import annotations

import json

import torch
from ignite.engine import Engine, Events

from scse_monai.handlers import BestModelSaver, TrainingCheckpoint, TrainingHistory, read_history


def _trainer(net: torch.nn.Module, opt: torch.optim.Optimizer) -> Engine:
    def step(engine: Engine, batch: torch.Tensor) -> dict:
        opt.zero_grad()
        loss = net(batch).pow(2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    return Engine(step)


def _setup(tmp_path, resume: bool = True):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    trainer = _trainer(net, opt)
    TrainingCheckpoint(str(tmp_path), {"model": net, "optimizer": opt}, resume=resume).attach(trainer)
    return net, opt, trainer


def test_resume_continues_after_saved_epoch(tmp_path) -> None:
    data = [torch.randn(4, 3) for _ in range(3)]
    net, _, trainer = _setup(tmp_path)
    trainer.run(data, max_epochs=2)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["trainer"]["iteration"] == 6
    torch.testing.assert_close(saved["model"]["weight"], net.weight.detach())

    net2, opt2, trainer2 = _setup(tmp_path)
    epochs_run = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    trainer2.run(data, max_epochs=3)
    assert epochs_run == [3]  # epochs 1 and 2 were restored, not repeated
    assert opt2.state_dict()["state"][0]["step"] == 9  # Adam's step count continued from 6


def test_resume_disabled_starts_afresh(tmp_path) -> None:
    data = [torch.randn(4, 3)]
    _, _, trainer = _setup(tmp_path)
    trainer.run(data, max_epochs=2)
    _, _, trainer2 = _setup(tmp_path, resume=False)
    started = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: started.append(e.state.epoch))
    trainer2.run(data, max_epochs=2)
    assert started == [1, 2]


def _evaluator(values: list[float]) -> Engine:
    evaluator = Engine(lambda e, b: None)
    evaluator.state.key_metric_name = "val_mean_dice"

    @evaluator.on(Events.EPOCH_COMPLETED)
    def _metric(engine: Engine) -> None:
        engine.state.metrics["val_mean_dice"] = values[engine.state.epoch - 1]

    return evaluator


def test_best_model_saver_keeps_only_improvements(tmp_path) -> None:
    net = torch.nn.Linear(2, 2)
    saver = BestModelSaver(str(tmp_path), net)
    evaluator = _evaluator([0.5, 0.4, 0.7])
    saver.attach(evaluator)
    saved_at = []
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: saved_at.append(saver.best))
    with torch.no_grad():
        net.weight.fill_(1.0)
    evaluator.run([0], max_epochs=3)
    assert saved_at == [0.5, 0.5, 0.7]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == {"weight", "bias"}  # a plain state_dict, as MONAI Label and bundles expect
    record = json.loads((tmp_path / "model.json").read_text())
    assert record["best_metric"] == 0.7
    assert BestModelSaver(str(tmp_path), net).best == 0.7  # a resumed run knows the best so far


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
