"""Request models, built from the project's schema.

A request is one of two models, `RowsRequest` (raw feature rows) or `EntitiesRequest` (entity
keys), so the OpenAPI schema says "exactly one of" with `oneOf`, not only a validator.
Numbers are finite (no NaN or Infinity) and integers fit in 64 bits: anything else is a 422
naming the field, never a 500 further down (SQLite, Feast) nor a non-standard JSON log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, create_model

from conveyor.core.config import Config

__all__ = ["ONE_OF", "TAGS", "ModelRef", "Prediction", "PredictResponse", "RequestModels", "request_models"]

INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
FINITE = Annotated[float, Field(allow_inf_nan=False)]
_TYPES: dict[str, Any] = {"integer": INT64, "float": FINITE, "string": str, "boolean": bool}

TAGS = ("rows", "entities")
"""The two request shapes; each is also the name of its one field."""

ONE_OF = "a JSON object with exactly one of 'rows' (feature values) or 'entities' (entity keys)"


@dataclass(frozen=True)
class RequestModels:
    row: type[BaseModel]
    """One row of raw feature values (fields aliased by feature name)."""
    rows: type[BaseModel]
    entities: type[BaseModel]
    request: type[RootModel[Any]]
    """The body of POST /predict: `rows` or `entities`, chosen by which key the object has."""


def _shape(value: Any) -> str | None:
    """Which request model a body is for: the one key it has; None (a 422) for both, neither or no object."""
    if isinstance(value, dict):
        has_rows, has_entities = "rows" in value, "entities" in value
        if has_rows != has_entities:
            return "rows" if has_rows else "entities"
        return None
    if isinstance(value, BaseModel):  # already validated (model_validate of a model instance)
        return "rows" if "rows" in type(value).model_fields else "entities"
    return None


def request_models(config: Config) -> RequestModels:
    """The request models of this project's features and entity key."""
    schema = config.schema
    fields: dict[str, Any] = {}
    for index, name in enumerate(schema.features()):
        column = schema.columns[name]
        kind = FINITE if column.role == "numeric" else _TYPES[column.type]  # 3 and 3.0 both fit a number
        fields[f"f{index}"] = (kind | None, Field(alias=name, description=f"{column.role} feature ({column.type})"))
    row = create_model(
        "FeatureRow",
        __config__=ConfigDict(strict=True, extra="ignore", populate_by_name=False),
        __doc__=f"Raw values of the {len(fields)} features; null is an explicit missing value.",
        **fields,
    )
    key_type: Any = INT64 if schema.entity.generated or schema.columns[schema.entity.key].type == "integer" else str
    limit = config.serving.max_batch

    class RowsRequest(BaseModel):
        """Raw feature rows."""

        model_config = ConfigDict(strict=True, extra="forbid")
        rows: list[row] = Field(min_length=1, max_length=limit)

    class EntitiesRequest(BaseModel):
        """Entity keys whose features are read from the online store."""

        model_config = ConfigDict(strict=True, extra="forbid")
        entities: list[key_type] = Field(
            min_length=1, max_length=limit, description=f"values of the entity key {schema.entity.key!r}"
        )

    body = Annotated[
        Union[Annotated[RowsRequest, Tag("rows")], Annotated[EntitiesRequest, Tag("entities")]],
        Discriminator(_shape, custom_error_type="rows_or_entities", custom_error_message=f"expected {ONE_OF}"),
    ]

    class PredictRequest(RootModel[body]):
        """Either raw feature rows, or entity keys whose features come from the online store."""

    PredictRequest.__doc__ = (
        f"Either `rows` of {len(fields)} raw features, or `entities`: values of the entity key "
        f"{schema.entity.key!r} (1 to {limit})."
    )
    return RequestModels(row, RowsRequest, EntitiesRequest, PredictRequest)


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    request_id: str
    """Also the key of this prediction's line in the prediction log."""
    prediction: float | int | str | bool
    probability: float | None = None
    """Classification: the probability of the positive class (binary) or of the predicted class."""
    entity: int | str | None = None
    """The entity key, when the request gave `entities`."""


class PredictResponse(BaseModel):
    """One prediction per row or entity, in the order of the request."""

    model: ModelRef
    predictions: list[Prediction]
