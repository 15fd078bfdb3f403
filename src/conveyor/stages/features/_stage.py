"""The features stages: `features` (apply + materialize) and `dataset` (the training set)."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace

__all__ = ["DATASET", "DATASET_VERSION", "FEATURES", "FEATURES_VERSION", "FeatureRepo", "TrainingSet"]

FEATURES_VERSION = 2
DATASET_VERSION = 1


class FeatureRepo(Result):
    """The applied Feast repo and what was materialized to its online store."""

    kind: ClassVar[str] = "features"

    project: str
    feature_view: str
    feature_service: str
    features: list[str]
    materialized_from: str
    materialized_to: str
    """The newest event time in the online store: online values are this fresh."""
    online_store: str

    def summary(self) -> str:
        return f"{len(self.features)} features in {self.feature_service}, online as of {self.materialized_to}"


class TrainingSet(Result):
    """A point-in-time correct training set, from Feast's historical retrieval."""

    kind: ClassVar[str] = "training_set"

    rows: int
    entity_rows: int
    columns: list[str]

    def summary(self) -> str:
        return f"{self.rows} rows x {len(self.columns)} columns (point-in-time join, none lost)"


@runtime_checkable
class CleanInput(Protocol):
    """What the features stages read of prepare's result: only its artifact (path and digest)."""

    @property
    def rows(self) -> int: ...


def _features(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[FeatureRepo]:
    from conveyor.stages.features._store import build_features

    return build_features(config, workspace, upstream.get("prepare", CleanInput))


def _dataset(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[TrainingSet]:
    from conveyor.stages.features._store import training_set

    return training_set(
        config, workspace, upstream.get("features", FeatureRepo), upstream.get("prepare", CleanInput)
    )


FEATURES: Stage[FeatureRepo] = Stage(
    name="features",
    needs=("prepare",),
    sections=("schema", "features"),
    version=FEATURES_VERSION,
    result=FeatureRepo,
    run=_features,
    describe="apply + materialize (Feast)",
    help="Apply the Feast repo (entity, source, view, service); write the online store.",
)

DATASET: Stage[TrainingSet] = Stage(
    name="dataset",
    needs=("features", "prepare"),
    sections=("schema",),
    version=DATASET_VERSION,
    result=TrainingSet,
    run=_dataset,
    describe="point-in-time training set (Feast)",
    help="Build the training set with Feast's point-in-time join; no row may be lost.",
)
