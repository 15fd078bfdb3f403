"""Training, on MLflow: candidates, the search, tracking, the registry, the gate, the champion.

The only package that imports MLflow. The runner runs `TRAIN` and `PROMOTE`, and hands
serving the model `load_champion` returns; the CLI lists versions with `list_versions`,
`describe_version` and `champion_history`.
"""

from conveyor.stages.training._challenge import ChallengeDecision, challenge
from conveyor.stages.training._compiled import TreeCompiler
from conveyor.stages.training._moves import move_champion, previous_champion
from conveyor.stages.training._registry import (
    CHAMPION,
    AliasChange,
    Champion,
    PromotionDecision,
    VersionInfo,
    champion_history,
    champion_number,
    describe_version,
    list_versions,
    load_champion,
    load_version,
    promote,
    registry_lock,
)
from conveyor.stages.training._stage import PROMOTE, TRAIN
from conveyor.stages.training._tracking import on_server, where
from conveyor.stages.training._train import Candidate, TrainResult, train

__all__ = [
    "CHAMPION",
    "PROMOTE",
    "TRAIN",
    "AliasChange",
    "Candidate",
    "ChallengeDecision",
    "Champion",
    "PromotionDecision",
    "TrainResult",
    "TreeCompiler",
    "VersionInfo",
    "challenge",
    "champion_history",
    "champion_number",
    "describe_version",
    "list_versions",
    "load_champion",
    "load_version",
    "move_champion",
    "on_server",
    "previous_champion",
    "promote",
    "registry_lock",
    "train",
    "where",
]
