"""Features, on Feast: the repo built from the project file, the online store, training sets, online reads.

The only package that imports Feast. Training calls `training_set`; serving calls
`OnlineFeatures`.
"""

from conveyor.stages.features._names import FeastNames, FieldNames, feast_names, field_names
from conveyor.stages.features._repo import feast_objects, repo_config, write_repo
from conveyor.stages.features._store import OnlineFeatures, build_features, feast_logs, open_store, training_set

__all__ = [
    "FeastNames",
    "FieldNames",
    "OnlineFeatures",
    "build_features",
    "feast_logs",
    "feast_names",
    "feast_objects",
    "field_names",
    "open_store",
    "repo_config",
    "training_set",
    "write_repo",
]
