"""Features, on Feast: the generated repo, materialization, training sets, online reads.

The only package that imports Feast. Training calls `training_set`; serving calls
`OnlineFeatures`.
"""

from conveyor.stages.features._repo import feast_names, write_repo
from conveyor.stages.features._store import OnlineFeatures, build_features, training_set

__all__ = ["OnlineFeatures", "build_features", "feast_names", "training_set", "write_repo"]
