from .checkpoint import (
    AtomicDiskSaver,
    BestModelCheckpoint,
    TrainingCheckpoint,
    load_weights_only,
    run_fingerprint,
    unwrap_model,
)
from .history import TrainingHistory, read_history
from .metrics import channel_output_transform

__all__ = [
    "channel_output_transform",
    "AtomicDiskSaver", "BestModelCheckpoint", "TrainingCheckpoint", "run_fingerprint",
    "load_weights_only", "TrainingHistory", "read_history", "unwrap_model"]
