"""Training, on MLflow: candidates, tracking, the registry, the promotion gate, the champion.

The only package that imports MLflow. The runner runs `TRAIN` and `PROMOTE`, and hands
serving the model `load_champion` returns.
"""

from conveyor.stages.training._registry import (
    CHAMPION,
    Champion,
    PromotionDecision,
    VersionInfo,
    describe_version,
    load_champion,
    promote,
)
from conveyor.stages.training._stage import PROMOTE, TRAIN
from conveyor.stages.training._train import Candidate, TrainResult, train

__all__ = [
    "CHAMPION",
    "PROMOTE",
    "TRAIN",
    "Candidate",
    "Champion",
    "PromotionDecision",
    "TrainResult",
    "VersionInfo",
    "describe_version",
    "load_champion",
    "promote",
    "train",
]
