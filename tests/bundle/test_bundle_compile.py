"""``--compile true``: the bundle's trainer compiles the network and follows eager training's loss curve."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch._functorch.config as functorch_config
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from ..conftest import BUNDLE, TINY_BUNDLE_OVERRIDES

CONFIGS = BUNDLE / "configs"
# smaller still than the shared tiny set: compiling a network's forward and backward takes a while on 2 cores
COMPILE_OVERRIDES = {
    **TINY_BUNDLE_OVERRIDES,
    "roi_size": [32, 32],
    "network_def#channels": [4, 8],
    "network_def#strides": [2],
    "network_def#num_res_units": 0,
    "val_interval": 2,  # one epoch, no validation: only the training step is compared
}


def _losses(phantom_data: Path, root: Path, compile_: bool) -> list[float]:
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type="train",
        bundle_root=str(root),
        dataset_dir=str(phantom_data),
        compile=compile_,
        **COMPILE_OVERRIDES,
    )
    workflow.initialize()
    losses: list[float] = []
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.compile is compile_
    # compiled backward graphs run without autocast, as eager backward does (scse_monai.utils.compile)
    assert (functorch_config.backward_pass_autocast == "off") is compile_
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    workflow.run()
    workflow.finalize()
    return losses


@pytest.mark.slow
def test_compiled_training_follows_eager_loss_curve(phantom_data: Path, tmp_path: Path) -> None:
    torch._dynamo.reset()
    # the bundle sets a process-wide torch setting when compiling; the patch restores it afterwards
    with functorch_config.patch(backward_pass_autocast="same_as_forward"):
        try:
            eager = _losses(phantom_data, tmp_path / "eager", False)
            compiled = _losses(phantom_data, tmp_path / "compiled", True)
        finally:
            torch._dynamo.reset()
    assert len(eager) >= 2 and len(compiled) == len(eager)
    # the same seed and data: inductor only reorders float arithmetic
    torch.testing.assert_close(torch.tensor(compiled[:3]), torch.tensor(eager[:3]), rtol=1e-3, atol=1e-4)
    assert (tmp_path / "compiled" / "models").is_dir()
