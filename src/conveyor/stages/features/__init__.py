"""Features, on Feast: the repo built in Python from the project file, the online store,
training sets, online reads.

The only package that imports Feast. The runner runs `FEATURES` and `DATASET`; serving is
handed an `OnlineFeatures` by the runner.
"""

from conveyor.stages.features._names import feast_names
from conveyor.stages.features._repo import write_repo
from conveyor.stages.features._stage import DATASET, FEATURES, FeatureRepo, TrainingSet
from conveyor.stages.features._store import OnlineFeatures, build_features, training_set

__all__ = [
    "DATASET",
    "FEATURES",
    "FeatureRepo",
    "OnlineFeatures",
    "TrainingSet",
    "build_features",
    "feast_names",
    "training_set",
    "write_repo",
]
