from .checkpoint import BestModelSaver, TrainingCheckpoint, load_weights_only, unwrap_model
from .history import TrainingHistory, read_history
from .metrics import channel_output_transform

__all__ = [
    "channel_output_transform",
    "BestModelSaver", "TrainingCheckpoint",
    "load_weights_only", "TrainingHistory", "read_history", "unwrap_model"]
