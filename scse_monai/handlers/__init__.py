from .chaos import CHAOSMetricHandler
from .checkpoint import (
    AtomicDiskSaver,
    BestModelCheckpoint,
    TrainingCheckpoint,
    load_weights_only,
    run_fingerprint,
    unwrap_model,
)
from .history import TrainingHistory, read_history
from .model_record import check_model_file, network_record, read_model_record
from .organ_dice import channel_output_transform, organ_dice_metrics

__all__ = [
    "CHAOSMetricHandler",
    "channel_output_transform",
    "organ_dice_metrics",
    "AtomicDiskSaver", "BestModelCheckpoint", "TrainingCheckpoint", "run_fingerprint",
    "load_weights_only", "TrainingHistory", "read_history", "unwrap_model",
    "check_model_file", "network_record", "read_model_record"]
