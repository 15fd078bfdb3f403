"""Names: the Feast object names of a project, and a safe Feast name for every data column.

Column names come from a CSV header: they can hold quotes, newlines, backslashes, code,
unicode, 200 characters, or differ only in case (DuckDB folds case). Feast, DuckDB and SQLite
only ever see the safe names made here; Conveyor maps them back to the original names at every
boundary (training sets, online rows). Nothing here is ever pasted into code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.core.config import EVENT_TIMESTAMP, Config

__all__ = ["ROW", "EntityNames", "FeastNames", "FieldNames", "entity_names", "feast_names", "field_names"]

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
"""A name kept as it is: ASCII letter first, then letters, digits, underscores; at most 48."""

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_]+")

ROW = "conveyor_row"
"""A column Conveyor adds to the entity rows of a point-in-time join (the row's position)."""

_RESERVED = frozenset({EVENT_TIMESTAMP, ROW, "created", "created_timestamp", "entity_row_unique_id"})
"""Names Feast or Conveyor use for their own columns (compared in lower case)."""


@dataclass(frozen=True)
class FeastNames:
    project: str
    entity: str
    source: str
    view: str
    service: str


def feast_names(config: Config) -> FeastNames:
    """The Feast object names of a project; `config.name` is validated as `[a-z][a-z0-9_-]*`.

    A project reading another project's feature repo (`features.repo`) uses that project's names.
    """
    base = re.sub(r"[^a-zA-Z0-9_]", "_", config.features.owner or config.name)
    return FeastNames(
        project=base,
        entity=f"{base}_key",
        source=f"{base}_clean",
        view=f"{base}_features",
        service=f"{base}_model",
    )


@dataclass(frozen=True)
class FieldNames:
    """Original column name <-> Feast field name, for the entity key and every feature."""

    key: str
    """The entity key column, as in the data."""
    features: tuple[str, ...]
    """The feature columns, as in the data, in schema order."""
    to_feast: Mapping[str, str] = field(default_factory=dict)

    @property
    def feast_key(self) -> str:
        return self.to_feast[self.key]

    @property
    def feast_features(self) -> list[str]:
        return [self.to_feast[name] for name in self.features]

    def to_original(self) -> dict[str, str]:
        return {safe: original for original, safe in self.to_feast.items()}


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _is_plain(name: str) -> bool:
    return _PLAIN.fullmatch(name) is not None and name.lower() not in _RESERVED


def _made(name: str) -> str:
    """A safe name for a name that is not plain: its ASCII-word part, shortened, and a hash of it."""
    stem = _NOT_PLAIN.sub("_", name).strip("_")[:32].rstrip("_") or "col"
    if not stem[0].isalpha():
        stem = f"c_{stem}"
    return f"{stem}_{_digest(name)}"


def field_names(config: Config) -> FieldNames:
    """Safe, unique Feast names for the entity key and the features of a project.

    A plain name (`temp`, `weather_sit`) is kept; any other name becomes its ASCII-word part plus
    a hash of the original (`"x\\ny"` -> `x_y_<8 hex>`). Names are unique ignoring case, also
    against the other columns of the clean data (target, `_line`), and deterministic: the same
    header always gives the same Feast names.
    """
    schema = config.schema
    key = schema.entity.key
    features = schema.features()
    columns = [key, *features]
    taken = {name.lower() for name in (schema.target, "_line")}
    to_feast: dict[str, str] = {}
    # plain names first, so that `a_b` keeps its name even when `a b` comes before it
    for name in columns:
        if _is_plain(name) and name.lower() not in taken:
            to_feast[name] = name
            taken.add(name.lower())
    for name in columns:
        if name in to_feast:
            continue
        candidate, n = _made(name), 1
        while candidate.lower() in taken or candidate.lower() in _RESERVED:
            n += 1
            candidate = f"{_made(name)}_{n}"
        to_feast[name] = candidate
        taken.add(candidate.lower())
    return FieldNames(key=key, features=tuple(features), to_feast=to_feast)


@dataclass(frozen=True)
class EntityNames:
    """The Feast names of one entity column's objects, and of the fields of its view."""

    column: str
    """The entity column, as in the data."""
    join_key: str
    entity: str
    source: str
    view: str
    path: str
    """The view's source, relative to `feature_repo/`."""
    to_feast: Mapping[str, str] = field(default_factory=dict)
    """Engineered (and internal) column -> Feast field name."""


def entity_names(config: Config, column: str, outputs: list[str]) -> EntityNames:
    """Feast names for the objects of entity column `column` and its engineered `outputs`.

    Objects are `<project>_entity_<key>`, `<project>_by_<key>` (view) and `<project>_by_<key>_source`:
    never equal to the row-key objects (`_key`, `_features`, `_clean`). Output names are kept when
    plain, else made safe as column names are; they are unique ignoring case across a project.
    """
    base = feast_names(config).project
    fields = field_names(config)
    join_key = fields.to_feast.get(column) or _made(column)
    taken = {name.lower() for name in fields.to_feast.values()} | {config.schema.target.lower(), "_line"}
    to_feast: dict[str, str] = {}
    for name in outputs:
        candidate = name if _is_plain(name) and name.lower() not in taken else _made(name)
        n = 1
        while candidate.lower() in taken or candidate.lower() in _RESERVED:
            n += 1
            candidate = f"{_made(name)}_{n}"
        to_feast[name] = candidate
        taken.add(candidate.lower())
    return EntityNames(
        column=column,
        join_key=join_key,
        entity=f"{base}_entity_{join_key}",
        source=f"{base}_by_{join_key}_source",
        view=f"{base}_by_{join_key}",
        path=f"data/by_{join_key}.parquet",
        to_feast=to_feast,
    )
