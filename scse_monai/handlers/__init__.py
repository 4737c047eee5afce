from .chaos import CHAOSMetricHandler
from .checkpoint import BestModelSaver, TrainingCheckpoint, load_weights_only, unwrap_model
from .history import TrainingHistory, read_history
from .organ_dice import channel_output_transform, organ_dice_metrics

__all__ = [
    "CHAOSMetricHandler",
    "channel_output_transform",
    "organ_dice_metrics",
    "BestModelSaver", "TrainingCheckpoint",
    "load_weights_only", "TrainingHistory", "read_history", "unwrap_model"]
