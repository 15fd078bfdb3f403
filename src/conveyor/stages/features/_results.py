"""What the features stages leave: the `FeatureRepo` and `TrainingSet` results, and what they read of prepare."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from pydantic import Field

from conveyor.core.artifacts import Result

__all__ = ["DATASET_VERSION", "FEATURES_VERSION", "CleanInput", "FeatureRepo", "TrainingSet"]

FEATURES_VERSION = 5
"""3: Feast objects built in Python (no generated code runs), safe Feast field names, a repo with
relative paths only (file registry, `data/source.parquet`), the online store written in bulk.
4: one feature table, view and online entry per `features.entities` column (aggregates, lags).
5: the online store is Conveyor's row store (`sqlite_store`): one SQLite row per entity."""
DATASET_VERSION = 3
"""2: the join through the registry's view at the repo's current place; columns by original names.
3: the engineered features (entity aggregates and lags as of each row, on-demand) after the schema's."""


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
    feast_names: dict[str, str] = Field(default_factory=dict)
    """Column -> Feast field name, for the columns whose name Feast does not see as it is."""
    source_rows: int = 0
    """Rows of the Feast source (`feature_repo/data/source.parquet`)."""
    online_entities: int = 0
    """Entities written to the online store: their latest row each."""
    online_entities_without_values: int = 0
    """Entities not written because Feast refuses a write batch without any feature value."""
    online_write_seconds: float = 0.0
    feast_log: list[str] = Field(default_factory=list)
    """Warnings Feast logged while the store was built (at most 20)."""
    entity_views: dict[str, str] = Field(default_factory=dict)
    """Feast view -> its entity column, one per `features.entities`."""
    engineered: list[str] = Field(default_factory=list)
    """The engineered features (aggregates, lags, on-demand), as training sets name them."""
    entity_table_rows: dict[str, int] = Field(default_factory=dict)
    """Rows of each entity view's feature table (one per change of its values)."""
    entity_online: dict[str, int] = Field(default_factory=dict)
    """Entities written to the online store, per entity view."""
    online_as_of: str = ""
    """The instant the entity views' online values are computed at (the newest event time)."""
    entity_table_seconds: float = 0.0
    model_services: dict[str, str] = Field(default_factory=dict)
    """With `models:`: model -> its own feature service (the fields of the shared views it reads)."""
    online_generation: str = ""
    """With `stores.online`: the Redis generation this build wrote and published; empty: a file store."""
    repo: str = ""
    """With `features.repo`: the folder of the project whose feature repo this one reads (nothing
    was built here); empty: the project's own store."""

    def service_for(self, model: str | None) -> str:
        """The feature service a model reads: its own with `models:`, else the project's."""
        return self.model_services.get(model or "", self.feature_service)

    def summary(self) -> str:
        views = f" + {len(self.entity_views)} entity views ({len(self.engineered)} engineered)" if self.engineered else ""
        if self.repo:
            return f"{len(self.features)} features read from {self.repo} ({self.feature_service}){views}, " \
                f"online as of {self.materialized_to}"
        return f"{len(self.features)} features in {self.feature_service}{views}, online as of {self.materialized_to}"


class TrainingSet(Result):
    """A point-in-time correct training set, from Feast's historical retrieval."""

    kind: ClassVar[str] = "training_set"

    rows: int
    entity_rows: int
    columns: list[str]
    features: list[str] = Field(default_factory=list)
    """The model inputs: the schema's features, then the engineered ones (`feature_columns(config)`)."""
    engineered: list[str] = Field(default_factory=list)
    """The engineered features among them (entity aggregates and lags as of each row, on-demand)."""

    def summary(self) -> str:
        extra = f", {len(self.engineered)} engineered" if self.engineered else ""
        return f"{self.rows} rows x {len(self.columns)} columns (point-in-time join, none lost{extra})"


@runtime_checkable
class CleanInput(Protocol):
    """What the features stages read of prepare's result: only its artifact (path and digest)."""

    @property
    def rows(self) -> int: ...
