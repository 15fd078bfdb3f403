"""Features, on Feast: the repo built in Python from the project file, the online store,
training sets, online reads; engineered features (per-entity aggregates and lags, point in time;
on-demand features computed the same way in training and serving).

The only package that imports Feast. The runner runs `FEATURES` and `DATASET`; serving is
handed an `OnlineFeatures` by the runner.
"""

from conveyor.stages.features._build import build_features
from conveyor.stages.features._dataset import training_set
from conveyor.stages.features._inspect import ViewInfo, feature_views
from conveyor.stages.features._names import feast_names
from conveyor.stages.features._ondemand import on_demand_values
from conveyor.stages.features._reads import OnlineFeatures
from conveyor.stages.features._repo import write_repo
from conveyor.stages.features._stage import DATASET, FEATURES, FeatureRepo, TrainingSet
from conveyor.stages.features._store import UnknownEntityError, feature_columns

__all__ = [
    "DATASET",
    "FEATURES",
    "FeatureRepo",
    "OnlineFeatures",
    "TrainingSet",
    "UnknownEntityError",
    "ViewInfo",
    "build_features",
    "feast_names",
    "feature_columns",
    "feature_views",
    "on_demand_values",
    "training_set",
    "write_repo",
]
