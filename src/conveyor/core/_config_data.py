"""The sections of `conveyor.yaml` about the data: source, schema, cleaning and features."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

EVENT_TIMESTAMP = "event_timestamp"
"""The column of clean data, training sets and Feast sources that holds each row's event time (UTC)."""

NULL_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?")
"""Cell values read as missing in every text source (`NAN_TOKENS` not in `integer` and `float` columns)."""

NAN_TOKENS = ("NaN", "nan")
"""In an `integer` or `float` column these are a non-finite number (`cleaning.non_finite` decides), not
a missing value, unless `cleaning.missing_tokens` lists them for the column (`init` does where it finds them)."""

ColumnType = Literal["integer", "float", "string", "boolean", "date", "datetime", "time"]
Role = Literal["numeric", "categorical", "id", "event_time", "ignore"]
Task = Literal["regression", "classification"]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class Incremental(_Model):
    """Read only the rows added since the last snapshot (`source.incremental`)."""

    column: str = Field(min_length=1)
    """A column that grows with every new row (`updated_at`, an id): rows above the last snapshot's
    maximum are read and appended to it. Rows whose value is null are read only by the first snapshot."""


class SourceConfig(_Model):
    """Where the raw data comes from, and how its text is read.

    `csv`/`parquet`: a local file (`path`); `postgres`: a table or a read-only query, the
    connection string in the environment variable `dsn_env`; `s3`: one object or a prefix of
    parts (`uri`), endpoint and credentials from the standard AWS environment variables.
    """

    kind: Literal["csv", "parquet", "postgres", "s3"] = "csv"
    path: str | None = None
    """The local CSV or Parquet file, folder of parts or glob (kind csv, parquet), relative to the project
    folder. Not a URI: objects in S3 are read by `kind: s3` (`uri`), on either engine."""
    dsn_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    """postgres: the environment variable holding the connection string; never the string itself."""
    table: str | None = Field(None, min_length=1)
    """postgres: the table (or view) to read, `name` or `schema.name`, exact names (double-quote
    a name holding a dot: `"my.schema".bikes`)."""
    query: str | None = Field(None, min_length=1)
    """postgres: a SELECT to read instead of a table, run in a READ ONLY transaction."""
    uri: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    """s3: `s3://bucket/key.csv` (one object) or `s3://bucket/prefix/` (every part under it, in key order)."""
    format: Literal["csv", "parquet"] | None = None
    """s3: how the objects are written; None: from their names (`.csv`, `.parquet`)."""
    incremental: Incremental | None = None
    """postgres: read only rows whose `column` is above the last snapshot's maximum, appended to it."""
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    """A text encoding Python knows: utf-8, utf-8-sig, utf-16, cp1252, latin-1, ..."""
    decimal: Literal[".", ","] = "."
    """The decimal mark of numbers in the file: `0.5` or `0,5`."""
    thousands: Literal[",", ".", " ", "'", "_"] | None = None
    """The thousands separator of numbers (`1,234`), or None when numbers have none."""
    on_bad_lines: Literal["error", "quarantine"] = "error"
    """What to do with a row that is not a row of the header's columns (field count, bad bytes, overlong field)."""
    max_field_bytes: Annotated[int, Field(ge=1)] = 1 << 20
    """A longer field makes its row a bad line (an unclosed quote swallows the lines after it)."""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"{value!r} is not a text encoding (utf-8, utf-8-sig, utf-16, cp1252, latin-1, ...)") from None
        return value

    @model_validator(mode="after")
    def _marks_differ(self) -> SourceConfig:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"decimal and thousands are both {self.decimal!r}; they must differ")
        if self.kind == "csv" and self.delimiter in ('"', "\n", "\r"):
            raise ValueError(f"delimiter {self.delimiter!r} cannot separate fields")
        return self._keys_fit_kind()

    def _keys_fit_kind(self) -> SourceConfig:
        wanted = {"csv": ("path",), "parquet": ("path",), "postgres": ("dsn_env",), "s3": ("uri",)}[self.kind]
        for key in wanted:
            if getattr(self, key) is None:
                raise ValueError(f"a source of kind {self.kind!r} needs source.{key}")
        foreign = {"path": ("csv", "parquet"), "dsn_env": ("postgres",), "table": ("postgres",),
                   "query": ("postgres",), "uri": ("s3",), "format": ("s3",), "incremental": ("postgres",)}
        for key, kinds in foreign.items():
            if getattr(self, key) is not None and self.kind not in kinds:
                raise ValueError(f"source.{key} is for a source of kind {' or '.join(kinds)}, not {self.kind!r}")
        if self.kind == "postgres" and (self.table is None) == (self.query is None):
            raise ValueError("a postgres source takes exactly one of source.table and source.query")
        self._path_is_local()
        return self

    def _path_is_local(self) -> None:
        """`path: s3a://bucket/key` would be looked for as a local file: say how an object store is read."""
        found = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", self.path or "")
        if found is None or self.kind not in ("csv", "parquet"):
            return
        scheme, rest = found.group(1).lower(), found.group(2)
        if scheme in ("s3", "s3a", "s3n"):
            raise ValueError(
                f"source.path {self.path!r} is an object-store URI, not a local path: read it with source.kind: s3, "
                f"source.uri: s3://{rest}, source.format: {self.kind} (the driver lists the parts and reads them one "
                "by one through boto3, on either engine); Spark does not read s3a:// itself here: that needs the "
                "hadoop-aws connector on Spark's classpath, which the PySpark wheel does not include"
            )
        raise ValueError(
            f"source.path {self.path!r}: a {scheme}:// URI is not read; source.path is a local file, folder of "
            "parts or glob (objects in S3: source.kind: s3)"
        )


class Column(_Model):
    type: ColumnType
    role: Role
    format: str | None = None
    """A date, datetime or time column's strftime format (`%d/%m/%Y`, `%H.%M.%S`); None: ISO 8601."""

    @model_validator(mode="after")
    def _format_of_a_date(self) -> Column:
        if self.format is not None and self.type not in ("date", "datetime", "time"):
            raise ValueError(f"format {self.format!r} is for a date, datetime or time column, not a {self.type} one")
        return self


class Entity(_Model):
    key: str
    generated: bool = False
    """True when Conveyor makes the key: the row's 1-based position among the file's data rows."""


class EventTime(_Model):
    kind: Literal["datetime", "date_hour", "date_time", "date_parts", "ingest_time"]
    columns: list[str] = Field(default_factory=list)
    format: str | None = None
    """strftime format of the datetime or date column; None lets Conveyor parse ISO 8601."""

    @model_validator(mode="after")
    def _columns_fit_kind(self) -> EventTime:
        wanted = {"datetime": (1,), "date_hour": (2,), "date_time": (2,), "date_parts": (3, 4), "ingest_time": (0,)}
        if len(self.columns) not in wanted[self.kind]:
            count = " or ".join(map(str, wanted[self.kind]))
            raise ValueError(f"event_time of kind {self.kind!r} takes {count} column(s), got {self.columns}")
        return self


class Schema(_Model):
    target: str
    task: Task
    entity: Entity
    event_time: EventTime
    columns: dict[str, Column]
    drop: list[str] = Field(default_factory=list)
    """Columns removed before anything else: leaks of the target, free text, ..."""

    @model_validator(mode="after")
    def _names_exist(self) -> Schema:
        known = set(self.columns)
        for name in [self.target, *self.drop, *self.event_time.columns]:
            if name not in known:
                raise ValueError(f"column {name!r} is not in schema.columns")
        if not self.entity.generated and self.entity.key not in known:
            raise ValueError(f"entity key {self.entity.key!r} is not in schema.columns")
        if self.target in self.drop:
            raise ValueError(f"the target {self.target!r} cannot be dropped")
        if self.event_time.kind == "date_parts":
            kinds = [self.columns[c].type for c in self.event_time.columns]
            if kinds[1] not in ("integer", "string") or any(k != "integer" for k in kinds[:1] + kinds[2:]):
                raise ValueError("event_time of kind 'date_parts' takes integer year, month (or month names), day "
                                 f"and optional hour columns; {self.event_time.columns} are {kinds}")
        if self.event_time.kind == "date_time":
            date, time = self.event_time.columns
            if (self.columns[date].type, self.columns[time].type) != ("date", "time"):
                raise ValueError(f"event_time of kind 'date_time' takes a date column then a time column; {date!r} is "
                                 f"{self.columns[date].type}, {time!r} is {self.columns[time].type}")
        return self

    def features(self) -> list[str]:
        """Model inputs in file order: numeric and categorical columns, not dropped."""
        dropped = set(self.drop)
        return [
            name
            for name, col in self.columns.items()
            if col.role in ("numeric", "categorical")
            and name != self.target
            and name not in dropped
            and name != self.entity.key
        ]

    def numeric(self) -> list[str]:
        return [n for n in self.features() if self.columns[n].role == "numeric"]

    def categorical(self) -> list[str]:
        return [n for n in self.features() if self.columns[n].role == "categorical"]


class CleaningConfig(_Model):
    null_values: dict[str, list[str | int | float]] = Field(default_factory=dict)
    """Per column, values that mean 'missing' in this data (e.g. a 0 wind speed)."""
    missing_tokens: dict[str, list[str]] = Field(default_factory=dict)
    """Per column, raw text that means missing (`-`, `unknown`), on top of NULL_TOKENS; matched before parsing."""
    non_finite: Literal["null", "quarantine"] = "quarantine"
    """`inf`, `-inf`, `NaN` and overflowing numbers in number columns: a missing value, or the row quarantined."""

    @field_validator("non_finite", mode="before")
    @classmethod
    def _yaml_null(cls, value: object) -> object:
        return "null" if value is None else value  # `non_finite: null` in YAML is None


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
AggregateFunction = Literal["count", "sum", "mean", "min", "max", "last"]
OnDemandKind = Literal["hour_of_day", "day_of_week", "ratio", "difference"]


def window_seconds(window: str) -> int:
    """`90m`, `1h`, `24h`, `7d`, `2w` -> seconds (s, m, h, d, w)."""
    return int(window[:-1]) * _WINDOW_UNITS[window[-1]]


class Aggregate(_Model):
    """A windowed aggregate per entity: over the entity's rows STRICTLY EARLIER than a row's event
    time and no older than `window` (`[t - window, t)`): a row never sees itself or later rows."""

    entity: str
    """One of `features.entities`."""
    function: AggregateFunction
    column: str | None = None
    """The column aggregated (a numeric feature or the target); none for `count` counts rows."""
    window: str = Field(pattern=r"^[1-9][0-9]{0,5}[smhdw]$")
    """How far back: a number and a unit, s, m, h, d or w (`1h`, `24h`, `7d`)."""
    name: str | None = None
    """The column's name in training sets and online; default `<entity>_<function>[_<column>]_<window>`."""

    @model_validator(mode="after")
    def _column_fits_function(self) -> Aggregate:
        if self.column is None and self.function != "count":
            raise ValueError(f"aggregate {self.function!r} needs a column")
        return self

    def output(self) -> str:
        column = f"_{self.column}" if self.column is not None else ""
        return self.name or f"{self.entity}_{self.function}{column}_{self.window}"

    def seconds(self) -> int:
        return window_seconds(self.window)


class Lag(_Model):
    """The value of `column` at the entity's `lag`-th most recent row strictly before a row's event time."""

    entity: str
    column: str
    lag: int = Field(1, ge=1, le=100)
    name: str | None = None
    """Default `<entity>_<column>_lag<lag>`."""

    def output(self) -> str:
        return self.name or f"{self.entity}_{self.column}_lag{self.lag}"


class OnDemandFeature(_Model):
    """A feature computed from the row itself, by the same function in training and serving.

    `hour_of_day` (0-23) and `day_of_week` (1 = Monday .. 7) of the event time (UTC);
    `ratio` (`of[0] / of[1]`, none when the divisor is 0) and `difference` (`of[0] - of[1]`) of
    two numeric columns: features of the schema or engineered features declared above.
    """

    name: str
    kind: OnDemandKind
    of: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _operands_fit_kind(self) -> OnDemandFeature:
        wanted = 2 if self.kind in ("ratio", "difference") else 0
        if len(self.of) != wanted:
            raise ValueError(f"on-demand feature {self.name!r} of kind {self.kind!r} takes {wanted} column(s) in `of`")
        return self


class FeaturesConfig(_Model):
    online_store: Literal["sqlite", "feast-sqlite"] = "sqlite"
    """`sqlite`: one row per entity (Conveyor's Feast online store, bulk-written); `feast-sqlite`:
    Feast's built-in SQLite store, one row per entity and feature (slower to fill)."""
    offline_store: Literal["duckdb"] = "duckdb"
    entities: list[str] = Field(default_factory=list)
    """Entity columns (e.g. `PULocationID`): each gets a Feast entity and a feature view of its aggregates."""
    aggregates: list[Aggregate] = Field(default_factory=list)
    lags: list[Lag] = Field(default_factory=list)
    on_demand: list[OnDemandFeature] = Field(default_factory=list)
    repo: str | None = None
    """Another project's folder (relative to this file) whose feature repo this project reads
    without owning it: its views, entities and engineered features are that project's
    (`load_config` reads them from its conveyor.yaml); this project builds no store of its own."""

    _owner: str | None = PrivateAttr(default=None)

    @property
    def owner(self) -> str | None:
        """With `repo`: the name of the project owning the feature repo (its Feast names are made
        from it); None when that project could not be read, or without `repo`."""
        return self._owner

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesConfig:
        if len(set(self.entities)) != len(self.entities):
            raise ValueError("features.entities: an entity is listed twice")
        items: list[Aggregate | Lag] = [*self.aggregates, *self.lags]
        for item in items:
            if item.entity not in self.entities:
                raise ValueError(f"{item.output()!r}: entity {item.entity!r} is not in features.entities")
        names = self.engineered()
        seen: set[str] = set()
        for name in names:
            if name.lower() in seen:
                raise ValueError(f"features: two engineered features are named {name!r} (names ignore case)")
            seen.add(name.lower())
        for index, feature in enumerate(self.on_demand):
            earlier = set(names[: len(self.aggregates) + len(self.lags) + index])
            for operand in feature.of:
                if operand in names and operand not in earlier:
                    raise ValueError(f"on-demand feature {feature.name!r} uses {operand!r}, declared after it")
        return self

    def engineered(self) -> list[str]:
        """The columns the features stage adds to the schema's features, in training sets and at
        serving: aggregates, lags, then on-demand features; all numeric."""
        return [
            *(a.output() for a in self.aggregates),
            *(lag.output() for lag in self.lags),
            *(f.name for f in self.on_demand),
        ]
