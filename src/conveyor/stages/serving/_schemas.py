"""Request and response models, built from the project's schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from conveyor.core.config import Config

__all__ = ["request_models"]

_TYPES: dict[str, Any] = {"integer": int, "float": float, "string": str, "boolean": bool}


def request_models(config: Config) -> tuple[type[BaseModel], type[BaseModel]]:
    """(FeatureRow, PredictRequest) for this project's features and entity key."""
    schema = config.schema
    fields: dict[str, Any] = {}
    for index, name in enumerate(schema.features()):
        column = schema.columns[name]
        kind = _TYPES[column.type]
        if column.role == "numeric":
            kind = float  # an integer column is still a number: 3 and 3.0 both fit
        fields[f"f{index}"] = (kind | None, Field(alias=name, description=f"{column.role} feature ({column.type})"))
    row = create_model(  # type: ignore[call-overload]
        "FeatureRow",
        __config__=ConfigDict(strict=True, extra="ignore", populate_by_name=False),
        **fields,
    )
    key_type: Any = int if schema.entity.generated or schema.columns[schema.entity.key].type == "integer" else str
    limit = config.serving.max_batch

    class PredictRequest(BaseModel):
        """Either raw feature rows, or entity keys whose features come from the online store."""

        model_config = ConfigDict(strict=True, extra="forbid")
        rows: list[row] | None = Field(None, min_length=1, max_length=limit)  # type: ignore[valid-type]
        entities: list[key_type] | None = Field(None, min_length=1, max_length=limit)  # type: ignore[valid-type]

        @model_validator(mode="after")
        def _one_of(self) -> PredictRequest:
            if (self.rows is None) == (self.entities is None):
                raise ValueError("give exactly one of 'rows' (feature values) or 'entities' (entity keys)")
            return self

    PredictRequest.__doc__ = f"Rows of {len(fields)} features, or values of the entity key {schema.entity.key!r}."
    return row, PredictRequest
