"""On-demand features: computed from the row itself, by one function in training and at serving.

Each feature is one Polars expression (`_expression`). The training set applies it to the joined
frame; `on_demand_values` applies the very same expressions to the rows of a request, so a
served row and a training row with the same inputs get the same value, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.core.config import EVENT_TIMESTAMP, Config, OnDemandFeature

__all__ = ["add_on_demand", "on_demand_inputs", "on_demand_values"]


def _expression(feature: OnDemandFeature) -> Any:
    import polars as pl

    if feature.kind == "hour_of_day":
        return pl.col(EVENT_TIMESTAMP).dt.hour().cast(pl.Int64)
    if feature.kind == "day_of_week":
        return pl.col(EVENT_TIMESTAMP).dt.weekday().cast(pl.Int64)
    left, right = (pl.col(name).cast(pl.Float64) for name in feature.of)
    if feature.kind == "difference":
        return left - right
    return pl.when(right != 0).then(left / right).otherwise(None)


def add_on_demand(config: Config, frame: Any) -> Any:
    """`frame` with every on-demand feature added, in declaration order (one may use an earlier one)."""
    for feature in config.features.on_demand:
        frame = frame.with_columns(_expression(feature).alias(feature.name))
    return frame


def on_demand_inputs(config: Config) -> list[str]:
    """The columns the on-demand features read (`event_timestamp` for the time of day or week)."""
    made = {f.name for f in config.features.on_demand}
    needed: list[str] = []
    for feature in config.features.on_demand:
        wanted = feature.of if feature.of else [EVENT_TIMESTAMP]
        needed.extend(name for name in wanted if name not in made)
    return list(dict.fromkeys(needed))


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"an event time must be a datetime or an ISO 8601 string, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def on_demand_values(
    config: Config, rows: Sequence[Mapping[str, Any]], event_time: datetime | str | None = None
) -> list[dict[str, Any]]:
    """The on-demand features of request rows, by the same expressions as the training set.

    A row gives its inputs by name: numeric features of the schema, engineered features (e.g. the
    output of `OnlineFeatures.get_entities`), and `event_timestamp` (a datetime or ISO string; naive
    means UTC, as in the clean data). A row without `event_timestamp` uses `event_time`, else now.
    """
    import polars as pl

    if not config.features.on_demand:
        return [{} for _ in rows]
    inputs = on_demand_inputs(config)
    default = _utc(event_time) or datetime.now(UTC)
    columns: dict[str, list[Any]] = {}
    for name in inputs:
        if name == EVENT_TIMESTAMP:
            columns[name] = [_utc(row.get(EVENT_TIMESTAMP)) or default for row in rows]
        else:
            columns[name] = [row.get(name) for row in rows]
    schema = {name: pl.Datetime("us", "UTC") if name == EVENT_TIMESTAMP else pl.Float64 for name in inputs}
    frame = add_on_demand(config, pl.DataFrame(columns, schema=schema, strict=False))
    names = [f.name for f in config.features.on_demand]
    return list(frame.select(names).to_dicts())
