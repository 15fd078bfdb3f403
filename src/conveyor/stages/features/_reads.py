"""Online reads for serving: `OnlineFeatures`, on Conveyor's SQLite row store or on Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.workspace import Workspace
from conveyor.stages.features._names import feast_names, field_names
from conveyor.stages.features._repo import (
    entity_layout,
    key_is_integer,
    redis_key_prefix,
    store_repo,
)
from conveyor.stages.features._store import (
    UnknownEntityError,
    feast_logs,
    open_store,
    registry_view,
)

__all__ = ["OnlineFeatures"]


class OnlineFeatures:
    """Reads feature rows for entity keys from the online store, for serving.

    `get` is safe to call from server threads: it touches no process-wide state.
    """

    def __init__(self, config: Config, workspace: Workspace) -> None:
        fields = field_names(config)
        self.key = config.schema.entity.key
        self.features = list(fields.features)
        self._feast_key = fields.feast_key
        self._as_text = not key_is_integer(config)
        with feast_logs() as logs:
            self._store = open_store(config, workspace, existing=True)
            try:
                names = feast_names(config)
                view, refs = registry_view(self._store, names.service, fields, names.view,
                                            exact=config.features.repo is None)
            except FeatureStoreError:
                raise
            except Exception as exc:
                raise FeatureStoreError(
                    f"no feature service in {store_repo(config, workspace)}; run `conveyor run` first "
                    f"({type(exc).__name__}: {exc}{'; ' + ' | '.join(logs[-3:]) if logs else ''})"
                ) from exc
        self._refs = refs  # built once: get() runs per request
        intervals = view.materialization_intervals
        self.as_of: datetime | None = max(end for _, end in intervals) if intervals else None
        """The latest event time written to the online store: how fresh its values are."""
        self._columns = [(name, fields.to_feast[name]) for name in self.features]
        # Entity views: one Feast call reads every entity's engineered features.
        layout = entity_layout(config)
        self.entities: list[str] = [plan.entity for plan, _ in layout]
        """The entity columns `get_entities` takes (`features.entities`)."""
        self.engineered: list[str] = [name for plan, _ in layout for name in plan.outputs()]
        """The entity features `get_entities` returns (aggregates and lags), by name."""
        self._entity_keys = [
            (plan.entity, names.join_key, _entity_is_text(config, plan.entity)) for plan, names in layout
        ]
        self._entity_refs = [f"{names.view}:{names.to_feast[n]}" for plan, names in layout
                             for n in [plan.last_event, *plan.outputs()]]
        self._entity_markers = [(plan.entity, names.to_feast[plan.last_event]) for plan, names in layout]
        self._entity_columns = [(n, names.to_feast[n]) for plan, names in layout for n in plan.outputs()]
        self._entity_outputs = [[(n, names.to_feast[n]) for n in plan.outputs()] for plan, names in layout]
        self._entity_empty = [
            {n: (0.0 if n in plan.zero_when_empty() else None) for n in plan.outputs()} for plan, _ in layout
        ]
        """Per entity: what a training row of an entity with no earlier row gets (counts and sums 0)."""
        self.entities_as_of: datetime | None = None
        """The instant the entity features are computed at: values for a request just after it."""
        if layout:
            try:
                ends = [
                    end
                    for _, names in layout
                    for _, end in self._store.get_feature_view(names.view).materialization_intervals
                ]
            except Exception as exc:  # a store built before features.entities was set
                raise FeatureStoreError(
                    f"the feature store in {store_repo(config, workspace)} has no view for every entity of "
                    f"features.entities ({type(exc).__name__}: {exc}); run `conveyor run --from features`"
                ) from exc
            self.entities_as_of = min(ends) if ends else None
        # On Redis, rows are read straight from Conveyor's layout (`redis_rows.RedisRows`): one
        # round trip, JSON decoded, no proto per value; `get_online_features` is not on the path.
        self._rows: Any = None
        self._checks: list[tuple[str, Any]] = []
        if config.stores.online is not None:
            from conveyor.stages.features.redis_rows import RedisRows

            names = feast_names(config)
            project = names.project
            self._table = f"{project}_{names.view}"
            self._entity_tables = [f"{project}_{n.view}" for _, n in layout]
            self._rows = RedisRows(config.stores.online.url_env, redis_key_prefix(config))
            if not self._rows.published():
                raise FeatureStoreError(
                    f"the online store in Redis (prefix {redis_key_prefix(config)!r}) holds no published features; "
                    "run `conveyor run --from features`"
                )
            self._checks.append(("redis", self._rows.ping))
        if config.stores.registry is not None:
            dsn_env = config.stores.registry.dsn_env
            self._checks.append(("postgresql", lambda: _postgres_down(dsn_env, "feature registry")))

    def health(self) -> dict[str, str | None]:
        """Each shared service the online reads depend on: None when it answers, else why not (one line)."""
        return {name: check() for name, check in self._checks}

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        """One feature row per key, in order, by original column names; None for an unknown key."""
        values = [str(k) if self._as_text and not isinstance(k, str) else k for k in keys]
        if self._rows is not None:
            return self._get_rows([str(v) if not isinstance(v, str) else v for v in values])
        result = self._store.get_online_features(features=self._refs, entity_rows={self._feast_key: values}).to_dict()
        rows: list[dict[str, Any] | None] = []
        for index in range(len(keys)):
            row = {name: result[safe][index] for name, safe in self._columns}
            rows.append(None if all(v is None for v in row.values()) else row)
        return rows

    def _get_rows(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """`get` on Redis: the stored JSON objects, by original names; None for an unknown key."""
        found: list[dict[str, Any] | None] = self._rows.read([(self._table, keys)])[0]
        rows: list[dict[str, Any] | None] = []
        columns = self._columns
        for raw in found:
            row = None if raw is None else {name: raw.get(safe) for name, safe in columns}
            rows.append(None if row is None or all(v is None for v in row.values()) else row)
        return rows

    def get_entities(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request row's engineered entity features (every entity view joined), by name.

        A row gives every entity column of `features.entities` (`{"PULocationID": 132,
        "DOLocationID": 48}`). The values are those a row just after `entities_as_of` gets in
        a training set. A key the store does not hold raises `UnknownEntityError` naming it.
        """
        entity_rows: dict[str, list[Any]] = {}
        for entity, join_key, as_text in self._entity_keys:
            values = []
            for row in rows:
                if entity not in row or row[entity] is None:
                    raise UnknownEntityError(entity, None, self.entities_as_of)
                value = row[entity]
                values.append(str(value) if as_text and not isinstance(value, str) else value)
            entity_rows[join_key] = values
        if not entity_rows:
            return [{} for _ in rows]
        if self._rows is not None:
            found = self._read_entities(entity_rows)
            for (entity, _), seen in zip(self._entity_markers, found, strict=True):
                for index, raw in enumerate(seen):
                    if raw is None:
                        raise UnknownEntityError(entity, rows[index][entity], self.entities_as_of)
            out: list[dict[str, Any]] = [{} for _ in rows]
            for columns, seen in zip(self._entity_outputs, found, strict=True):
                for index, raw in enumerate(seen):
                    assert raw is not None  # checked above
                    out[index] |= {name: raw.get(safe) for name, safe in columns}
            return out
        result = self._store.get_online_features(features=self._entity_refs, entity_rows=entity_rows).to_dict()
        for entity, marker in self._entity_markers:
            for index, value in enumerate(result[marker]):
                if value is None:
                    raise UnknownEntityError(entity, rows[index][entity], self.entities_as_of)
        return [{name: result[safe][index] for name, safe in self._entity_columns} for index in range(len(rows))]

    def _read_entities(self, entity_rows: dict[str, list[Any]]) -> list[list[dict[str, Any] | None]]:
        """Per entity view, in layout order: each row's stored JSON object (None: never seen), in one call."""
        requests = [(table, [v if isinstance(v, str) else str(v) for v in entity_rows[join_key]])
                    for table, (_, join_key, _) in zip(self._entity_tables, self._entity_keys, strict=True)]
        found: list[list[dict[str, Any] | None]] = self._rows.read(requests)
        return found

    def entity_features(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each row's engineered entity features for a model, never an error for a key.

        As `get_entities`, in one Feast call, except that an entity the row does not give, or
        whose key the store has never seen, gets what a training row of a new entity gets: its
        counts and sums 0, the rest missing. Each entity on its own: a known pickup zone keeps
        its values beside an unseen dropoff zone.
        """
        if not self._entity_keys:
            return [{} for _ in rows]
        entity_rows: dict[str, list[Any]] = {}
        for entity, join_key, as_text in self._entity_keys:
            values = []
            for row in rows:
                value = row.get(entity)
                if value is None:
                    value = _ABSENT_TEXT if as_text else _ABSENT_INT  # no row has it: read as unseen
                values.append(str(value) if as_text and not isinstance(value, str) else value)
            entity_rows[join_key] = values
        out: list[dict[str, Any]] = [{} for _ in rows]
        if self._rows is not None:
            for columns, empty, seen in zip(self._entity_outputs, self._entity_empty, self._read_entities(entity_rows),
                                            strict=True):
                for index, raw in enumerate(seen):
                    out[index] |= empty if raw is None else {name: raw.get(safe) for name, safe in columns}
            return out
        result = self._store.get_online_features(features=self._entity_refs, entity_rows=entity_rows).to_dict()
        for (_, marker), columns, empty in zip(self._entity_markers, self._entity_outputs, self._entity_empty,
                                               strict=True):
            for index, seen in enumerate(result[marker]):
                out[index] |= empty if seen is None else {name: result[safe][index] for name, safe in columns}
        return out

    def freshness(self, now: datetime | None = None) -> dict[str, Any]:
        """How stale the online values are: the instant they are computed at, and its age."""
        from datetime import UTC

        when = now or datetime.now(UTC)
        as_of = self.entities_as_of or self.as_of
        age = (when - as_of).total_seconds() if as_of is not None else None
        return {"as_of": as_of.isoformat() if as_of is not None else None, "age_seconds": age}


_ABSENT_INT = -(2**63)
_ABSENT_TEXT = "\x00conveyor:absent"
"""The key read for an entity a request row does not give: no data row can hold it."""


def _postgres_down(dsn_env: str, what: str) -> str | None:
    """None when the PostgreSQL database `dsn_env` names answers `SELECT 1` within a second; else why not."""
    import os

    import psycopg

    dsn = os.environ.get(dsn_env, "")
    try:
        where = psycopg.conninfo.conninfo_to_dict(dsn)
        place = f"{where.get('host', 'localhost')}:{where.get('port', 5432)}"
    except psycopg.Error:
        place = f"({dsn_env} is not a PostgreSQL connection string)"
    if not dsn:
        return f"{what} unavailable: the environment variable {dsn_env} is not set"
    try:
        with psycopg.connect(dsn, connect_timeout=1, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        why = "refused the connection" if "refused" in str(exc).lower() else f"failed: {text}"
        return f"{what} unavailable: PostgreSQL at {place} {why}"
    return None


def _entity_is_text(config: Config, column: str) -> bool:
    if column == config.schema.entity.key:
        return not key_is_integer(config)
    return config.schema.columns[column].type != "integer"
