"""Engineered per-entity features: windowed aggregates and lags, point-in-time correct.

A feature of entity `e` at time `t` is computed over the rows of `e` STRICTLY EARLIER than `t`:
an aggregate over `[t - window, t)`, a lag from the `k`-th latest row before `t`. A row never sees
itself, a row at the same instant, or a later row, whatever the file order (late-arriving rows
count from their event time on; future-dated rows count only for rows after them).

Such a feature is a step function of time: it changes just after a row of the entity
(`event + 1 us`) and just after a row leaves a window (`event + window + 1 us`). The entity's
*feature table* (its Feast source) holds one row per change point with the values valid from it
on, so an ASOF join (latest table row at or before `t`) is exact at every instant, and
after the last change point the values stay right forever (windows empty, counts 0).
The training set is that join at each row's event time; the online store holds each entity's
values at the store's next instant (`as_of + 1 us`); both read the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.core.config import EVENT_TIMESTAMP, Aggregate, Config, Lag
from conveyor.core.errors import ConfigError

__all__ = [
    "INSTANT",
    "EntityPlan",
    "check_features_config",
    "entity_plans",
    "entity_table",
    "join_aggregates",
    "online_rows",
]

INSTANT = timedelta(microseconds=1)
"""Event times are microseconds: a row's own value enters its entity's features one instant later."""

_EVENT = "__conveyor_event"
_ORDER = "__conveyor_order"
_ROW = "__conveyor_row"


@dataclass(frozen=True)
class EntityPlan:
    """The engineered features of one entity column: one Feast entity, source and view."""

    entity: str
    index: int
    aggregates: tuple[Aggregate, ...] = ()
    lags: tuple[Lag, ...] = ()
    columns: tuple[str, ...] = field(default=())
    """The data columns read (aggregated or lagged)."""

    @property
    def last_event(self) -> str:
        """Internal column: the time of the entity's latest row before `t` (present for a known entity)."""
        return f"conveyor_last_event_{self.index}"

    def outputs(self) -> list[str]:
        return [*(a.output() for a in self.aggregates), *(lag.output() for lag in self.lags)]

    def zero_when_empty(self) -> list[str]:
        """Counts and sums: 0 over an empty window (before the entity's first row too)."""
        return [a.output() for a in self.aggregates if a.function in ("count", "sum")]

    def ttl_seconds(self) -> int:
        """How long a table row stays valid: the longest window (0, forever, when a lag is declared).

        A row older than the longest window can only hold empty windows (counts 0, the rest null),
        so a store that expires it answers the same."""
        if self.lags or not self.aggregates:
            return 0
        return max(a.seconds() for a in self.aggregates) + 1


def entity_plans(config: Config) -> list[EntityPlan]:
    features = config.features
    plans = []
    for index, entity in enumerate(features.entities):
        aggregates = tuple(a for a in features.aggregates if a.entity == entity)
        lags = tuple(lag for lag in features.lags if lag.entity == entity)
        columns = tuple(dict.fromkeys([*(a.column for a in aggregates if a.column), *(lag.column for lag in lags)]))
        plans.append(EntityPlan(entity, index, aggregates, lags, columns))
    return plans


def check_features_config(config: Config) -> None:
    """What `features` needs of the schema (the FeaturesConfig alone cannot see it)."""
    schema, features = config.schema, config.features
    inputs = set(schema.features())
    numeric = set(schema.numeric()) | {schema.target}
    if schema.task == "classification":
        numeric.discard(schema.target)
    for entity in features.entities:
        if entity not in inputs and entity != schema.entity.key:
            raise ConfigError(
                f"features.entities: {entity!r} is not a feature of the schema (role numeric or categorical, "
                "not dropped): an entity column must reach the clean data"
            )
        if entity != schema.entity.key and schema.columns[entity].type not in ("integer", "string"):
            raise ConfigError(f"features.entities: {entity!r} is a {schema.columns[entity].type} column; "
                              "an entity is an integer or a string")
    items: list[Aggregate | Lag] = [*features.aggregates, *features.lags]
    for item in items:
        if item.column is not None and item.column not in numeric:
            raise ConfigError(
                f"features: {item.output()!r} reads {item.column!r}, which is not a numeric feature or the "
                "(regression) target"
            )
    engineered = features.engineered()
    for name in engineered:
        if name in schema.columns or name.lower() in {c.lower() for c in schema.columns} or name.startswith("conveyor_"):
            raise ConfigError(f"features: the engineered feature {name!r} has the name of a column (or a reserved one)")
    usable = set(schema.numeric()) | set(engineered)
    for feature in features.on_demand:
        for operand in feature.of:
            if operand not in usable:
                raise ConfigError(
                    f"features.on_demand: {feature.name!r} uses {operand!r}, which is neither a numeric feature "
                    "nor an engineered feature"
                )


def _key_dtype(frame: Any, entity: str) -> Any:
    return frame.schema[entity]


def entity_table(events: Any, plan: EntityPlan) -> Any:
    """The feature table of one entity: entity, `event_timestamp` (valid from), last event, outputs.

    `events` holds the entity column, `event_timestamp` and the plan's columns, in file order.
    Sorted by entity then time.
    """
    import polars as pl

    e, ts = plan.entity, EVENT_TIMESTAMP
    ev = (
        events.select(e, ts, *plan.columns)
        .with_row_index(_ORDER)
        .filter(pl.col(e).is_not_null() & pl.col(ts).is_not_null())
        .with_columns(*[pl.col(c).cast(pl.Float64) for c in plan.columns])
        .sort([e, ts, _ORDER])
    )
    windows = sorted({a.seconds() for a in plan.aggregates})
    points = pl.concat(
        [
            ev.select(e, (pl.col(ts) + INSTANT).alias(ts)),
            *[ev.select(e, (pl.col(ts) + timedelta(seconds=w) + INSTANT).alias(ts)) for w in windows],
        ]
    )
    # Windowed aggregates: the change points among the rows, each window [t - w, t) (closed left:
    # a row at t itself is out, so the order of rows within one instant does not matter). Query
    # points carry no value, so they add nothing. One sort for all (the costly step).
    combined = pl.concat(
        [
            ev.select(e, ts, *plan.columns, pl.lit(1, pl.Int64).alias(_EVENT)),
            points.select(
                e, ts, *[pl.lit(None, pl.Float64).alias(c) for c in plan.columns], pl.lit(None, pl.Int64).alias(_EVENT)
            ),
        ]
    ).sort([e, ts], maintain_order=True)  # ties in input order: the same sums for one entity or many
    exprs = []
    for a in plan.aggregates:
        if a.function == "last":
            continue
        w = timedelta(seconds=a.seconds())
        if a.function == "count":
            source = pl.col(_EVENT).fill_null(0) if a.column is None else pl.col(a.column).is_not_null().cast(pl.Int64)
            exprs.append(source.rolling_sum_by(ts, w, closed="left").over(e).cast(pl.Int64).alias(a.output()))
            continue
        rolling = {
            "sum": pl.Expr.rolling_sum_by,
            "mean": pl.Expr.rolling_mean_by,
            "min": pl.Expr.rolling_min_by,
            "max": pl.Expr.rolling_max_by,
        }[a.function]
        exprs.append(rolling(pl.col(a.column or ""), ts, w, closed="left").over(e).cast(pl.Float64).alias(a.output()))
    table = combined.with_columns(exprs).filter(pl.col(_EVENT).is_null()).drop(_EVENT, *plan.columns)
    repeated = pl.col(e).eq_missing(pl.col(e).shift(1)) & pl.col(ts).eq_missing(pl.col(ts).shift(1))
    table = table.filter(~repeated)  # one row per change point (a point can come from several rows)
    # Lags and `last`: from the latest row strictly before t (ties at one instant: the last in the file).
    lasts = [a for a in plan.aggregates if a.function == "last"]
    latest = (
        ev.with_columns(
            pl.col(ts).alias(plan.last_event),
            *[pl.col(lag.column).shift(lag.lag - 1).over(e).alias(lag.output()) for lag in plan.lags],
            *[pl.col(a.column or "").alias(a.output()) for a in lasts],
        )
        .group_by([e, ts], maintain_order=True)
        .last()
        .select(e, ts, plan.last_event, *[lag.output() for lag in plan.lags], *[a.output() for a in lasts])
    )  # both sorted by (entity, time): what an ASOF join by entity needs
    table = table.join_asof(
        latest, on=ts, by=e, strategy="backward", allow_exact_matches=False, check_sortedness=False
    )
    table = table.with_columns(
        *[
            pl.when(pl.col(plan.last_event) >= pl.col(ts) - timedelta(seconds=a.seconds()))
            .then(pl.col(a.output()))
            .otherwise(None)
            .alias(a.output())
            for a in lasts
        ]
    )
    return table.select(e, ts, plan.last_event, *plan.outputs()).sort([e, ts])


def join_aggregates(rows: Any, tables: Mapping[str, Any], plans: list[EntityPlan]) -> Any:
    """`rows` (entity columns and `event_timestamp`) with every plan's features as of each row's
    event time: an ASOF join on each entity's table (sorted by entity then time, as
    `entity_table` makes it and the features stage writes it). Rows in == rows out, in the same order; an
    entity without an earlier row gets counts and sums 0, the rest null."""
    import polars as pl

    out = rows.with_row_index(_ROW)
    for plan in plans:
        table = tables[plan.entity]
        # Both sides sorted by (entity, time): the ASOF join by entity needs each entity's rows in
        # time order, not a global sort (1M table rows: a sort would cost more than the join).
        keyed = out.with_columns(pl.col(plan.entity).cast(_key_dtype(table, plan.entity)).alias(_ORDER)).sort(
            [_ORDER, EVENT_TIMESTAMP]
        )
        right = table.select(pl.col(plan.entity).alias(_ORDER), EVENT_TIMESTAMP, *plan.outputs())
        out = (
            keyed.join_asof(right, on=EVENT_TIMESTAMP, by=_ORDER, strategy="backward", check_sortedness=False)
            .drop(_ORDER)
            .with_columns(*[pl.col(c).fill_null(0) for c in plan.zero_when_empty()])
        )
    return out.sort(_ROW).drop(_ROW)


def online_rows(table: Any, plan: EntityPlan, as_of: datetime) -> Any:
    """Each entity's values at the store's next instant (`as_of + 1 us`): what a row then would get."""
    import polars as pl

    return (
        table.filter(pl.col(EVENT_TIMESTAMP) <= as_of + INSTANT)
        .sort([plan.entity, EVENT_TIMESTAMP])
        .group_by(plan.entity, maintain_order=True)
        .last()
    )
