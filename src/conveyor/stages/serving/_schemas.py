"""Request models, built from the project's schema.

A request is one of two models, `RowsRequest` (raw feature rows) or `EntitiesRequest` (entity
keys), so the OpenAPI schema says "exactly one of" with `oneOf`, not only a validator.
Numbers are finite (no NaN or Infinity) and integers fit in 64 bits: anything else is a 422
naming the field, never a 500 further down (SQLite, Feast) nor a non-standard JSON log line.
An `integer` feature takes a whole number written like a float (`3.0`) below 2^53, as `prepare`
does, and refuses a fractional one (`3.5`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from conveyor.core.cleaning import MAX_EXACT_INTEGER
from conveyor.core.config import Config

__all__ = [
    "ONE_OF", "TAGS", "ModelRef", "Prediction", "PredictResponse", "RequestModels", "body_validator", "request_models",
]

INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
FINITE = Annotated[float, Field(allow_inf_nan=False)]

FRACTIONAL = "Input should be a valid integer, got a number with a fractional part"
TOO_LARGE = "Input should be a valid integer, got a number too large to be an exact integer"


def _whole(value: Any) -> Any:
    """A float given for an `integer` feature: whole and below 2^53, else an `int_from_float` error
    (a non-finite one is left to the number's own check); anything else as it came."""
    if type(value) is float and math.isfinite(value):
        if not value.is_integer():
            raise PydanticCustomError("int_from_float", FRACTIONAL)
        if abs(value) >= MAX_EXACT_INTEGER:
            raise PydanticCustomError("int_from_float", TOO_LARGE)
    return value


def _whole_int(value: Any) -> Any:
    """`_whole`, then a whole float as the int it is (a categorical level: 2.0 is the level 2)."""
    value = _whole(value)
    return int(value) if type(value) is float and math.isfinite(value) else value


WHOLE_NUMBER = Annotated[FINITE, BeforeValidator(_whole), WithJsonSchema({"type": "integer"})]
"""A numeric `integer` feature: a whole number, served as a float like every numeric feature."""
INTEGER = Annotated[INT64, BeforeValidator(_whole_int)]
"""A categorical `integer` feature: a 64-bit integer, or a whole float below 2^53 read as one."""
_TYPES: dict[str, Any] = {"integer": INTEGER, "float": FINITE, "string": str, "boolean": bool}

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


def _feature_type(role: str, kind: str) -> Any:
    """A feature's request type: a numeric feature is a number (3 and 3.0 both fit), a whole one if `integer`."""
    if role == "numeric":
        return WHOLE_NUMBER if kind == "integer" else FINITE
    return _TYPES[kind]


def _field_types(config: Config) -> dict[str, Any]:
    schema = config.schema
    return {name: _feature_type(schema.columns[name].role, schema.columns[name].type) for name in schema.features()}


def _key_type(config: Config) -> Any:
    schema = config.schema
    return INT64 if schema.entity.generated or schema.columns[schema.entity.key].type == "integer" else str


def _typed_dict(name: str, fields: dict[str, Any], extra: str = "forbid") -> Any:
    """A TypedDict made at run time (the keys are feature names), strict, with pydantic's `extra` rule."""
    made: Any = TypedDict
    typed = made(name, fields)
    typed.__pydantic_config__ = ConfigDict(strict=True, extra=extra)  # type: ignore[typeddict-item]
    return typed


def body_validator(config: Config) -> TypeAdapter[Any]:
    """The body of POST /predict, validated from JSON bytes in one call into plain dicts.

    The same rules (and error types and locations) as `request_models(config).request`, on
    TypedDicts: no model instance per row, no `model_dump`. The request models stay the
    OpenAPI description; this is the hot path.
    """
    limit = config.serving.max_batch
    # built at run time from the schema: typing's constructors, seen by mypy as values of type Any
    annotated: Any = Annotated
    union: Any = Union
    listed: Any = list
    sized = Field(min_length=1, max_length=limit)
    row = _typed_dict("FeatureRow", {name: kind | None for name, kind in _field_types(config).items()}, "ignore")
    rows = _typed_dict("RowsRequest", {"rows": annotated[listed[row], sized]})
    entities = _typed_dict("EntitiesRequest", {"entities": annotated[listed[_key_type(config)], sized]})
    body = annotated[
        union[annotated[rows, Tag("rows")], annotated[entities, Tag("entities")]],
        Discriminator(_shape, custom_error_type="rows_or_entities", custom_error_message=f"expected {ONE_OF}"),
    ]
    return TypeAdapter(body)


def request_models(config: Config) -> RequestModels:
    """The request models of this project's features and entity key."""
    schema = config.schema
    fields: dict[str, Any] = {}
    for index, name in enumerate(schema.features()):
        column = schema.columns[name]
        kind = _feature_type(column.role, column.type)
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
    warnings: dict[str, str] | None = None
    """Features whose value training never saw (`unseen category`, `above the training range`, `below the
    training range`): answered as missing, and logged. Absent when there is none."""


class PredictResponse(BaseModel):
    """One prediction per row or entity, in the order of the request."""

    model: ModelRef
    predictions: list[Prediction]
