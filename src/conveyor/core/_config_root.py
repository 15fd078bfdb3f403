"""The whole project file (`Config`): its sections, the checks across them, and the views derived
from it (a model's own Config, the model inputs, a section as plain data).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from conveyor.core._config_data import CleaningConfig, FeaturesConfig, Schema, SourceConfig, _Model
from conveyor.core._config_pipeline import (
    ModelSpec,
    MonitoringConfig,
    PromotionConfig,
    ServingConfig,
    SparkConfig,
    StoresConfig,
    TrainingConfig,
)


class Config(_Model):
    version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    source: SourceConfig
    schema_: Annotated[Schema, Field(alias="schema")]
    cleaning: CleaningConfig = CleaningConfig()
    features: FeaturesConfig = FeaturesConfig()
    training: TrainingConfig = TrainingConfig()
    promotion: PromotionConfig = PromotionConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    stores: StoresConfig = StoresConfig()
    """Shared services (MLflow server, PostgreSQL, Redis, S3) instead of the embedded default."""
    engine: Literal["polars", "spark"] = "polars"
    """What runs ingest and prepare: Polars in this process, or Apache Spark (`spark:`; the `spark` extra)."""
    spark: SparkConfig = SparkConfig()
    """The Spark session of `engine: spark`."""
    models: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")], ModelSpec] = Field(default_factory=dict)
    """Several models sharing the feature views (taxi fare, tip ...); empty: one model, `schema.target`."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    _engineered: list[str] | None = PrivateAttr(default=None)
    """In a model's own Config (`for_model`): the engineered features it reads; None: all of them."""
    _model: str | None = PrivateAttr(default=None)

    @property
    def model(self) -> str | None:
        """In a model's own Config (`for_model`): the model's name in `models:`; else None."""
        return self._model

    @model_validator(mode="after")
    def _cleaning_fits_schema(self) -> Config:
        columns = self.schema_.columns
        for name, values in self.cleaning.null_values.items():
            if name not in columns:
                raise ValueError(f"cleaning.null_values: column {name!r} is not in schema.columns")
            if columns[name].type in ("integer", "float"):
                for value in values:
                    try:
                        float(value)
                    except ValueError:
                        raise ValueError(
                            f"cleaning.null_values.{name}: {value!r} is not a number, "
                            f"and {name!r} is a {columns[name].type} column"
                        ) from None
        return self

    @model_validator(mode="after")
    def _models_fit_schema(self) -> Config:
        columns, dropped = self.schema_.columns, set(self.schema_.drop)
        inputs = set(self.schema_.features()) | {self.schema_.target} | set(self.features.engineered())
        for name, spec in self.models.items():
            if spec.target not in columns or spec.target in dropped:
                raise ValueError(f"models.{name}.target: {spec.target!r} is not a column of schema.columns "
                                 "(or it is in schema.drop)")
            if columns[spec.target].role not in ("numeric", "categorical"):
                raise ValueError(f"models.{name}.target: {spec.target!r} has role "
                                 f"{columns[spec.target].role!r}; a target is numeric or categorical")
            for feature in spec.features or []:
                if feature not in inputs or feature == spec.target:
                    raise ValueError(f"models.{name}.features: {feature!r} is not a model input of the project "
                                     "(a schema feature or an engineered feature, other than the model's target)")
        shadow = self.serving.shadow
        if self.models and shadow is not None and not isinstance(shadow, dict):
            raise ValueError(f"serving.shadow: {shadow!r} names a version of one model, and this project has "
                             f"several ({', '.join(self.models)}); give one per model, e.g. "
                             f"{{{next(iter(self.models))}: {shadow!r}}}")
        if isinstance(shadow, dict):
            if not self.models:
                raise ValueError("serving.shadow: a mapping of models is for a project with models:; "
                                 "give the version (3) or alias (challenger) of the project's model")
            for name in shadow:
                if name not in self.models:
                    raise ValueError(f"serving.shadow.{name}: no model {name!r} in models: "
                                     f"(the project has {', '.join(self.models)})")
        return self

    @property
    def schema(self) -> Schema:  # type: ignore[override]
        return self.schema_

    def targets(self) -> list[str]:
        """Every column a model predicts: `schema.target`, then each model's target."""
        return list(dict.fromkeys([self.schema_.target, *(m.target for m in self.models.values())]))

    def for_model(self, model: str) -> Config:
        """The Config one model of `models:` trains and serves with: named `<project>-<model>`
        (its experiment, registered model and `@champion`), its target and task in the schema,
        every other column it does not read moved to `schema.drop`, its engineered inputs only.
        The feature sections are the project's: the views stay shared."""
        spec = self.models[model]
        targets = set(self.targets())
        engineered = self.features.engineered()
        if spec.features is None:
            wanted = [f for f in [*self.schema_.features(), *engineered] if f not in targets]
        else:
            wanted = list(spec.features)
        keep = set(wanted) | {spec.target}
        drop = [*self.schema_.drop, *(
            name for name, col in self.schema_.columns.items()
            if col.role in ("numeric", "categorical") and name not in keep and name not in self.schema_.drop
        )]
        schema = self.schema_.model_copy(update={"target": spec.target, "task": spec.task, "drop": drop})
        training = self.training.model_copy(update={"metric": spec.metric or self.training.metric})
        shadows = self.serving.shadow if isinstance(self.serving.shadow, dict) else {}
        serving = self.serving.model_copy(update={"shadow": shadows.get(model)})
        derived = self.model_copy(update={"name": f"{self.name}-{model}", "schema_": schema, "training": training,
                                          "serving": serving, "models": {}})
        derived._engineered = [f for f in engineered if f in keep]
        derived._model = model
        return derived

    def engineered_inputs(self) -> list[str]:
        """The engineered features a model reads: all of them, or a `for_model` Config's own."""
        return self.features.engineered() if self._engineered is None else list(self._engineered)

    def model_inputs(self) -> list[str]:
        """What a model reads: the schema's features, then the engineered ones (all numeric)."""
        return [*self.schema_.features(), *self.engineered_inputs()]

    def model_numeric(self) -> list[str]:
        return [*self.schema_.numeric(), *self.engineered_inputs()]

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain data, for hashing a stage's inputs."""
        section: dict[str, Any] = self.model_dump(mode="json", by_alias=True)[name]
        return section
