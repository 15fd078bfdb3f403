"""The project file, `conveyor.yaml`, as typed, validated, immutable objects.

Every model is strict, frozen and forbids unknown keys, so a typo is an error naming the key,
the value and what was expected, never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from conveyor.core.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "EVENT_TIMESTAMP",
    "NAN_TOKENS",
    "NULL_TOKENS",
    "Column",
    "Config",
    "Entity",
    "EventTime",
    "FeaturesConfig",
    "Incremental",
    "ModelSpec",
    "MonitoringConfig",
    "WebhookConfig",
    "PromotionConfig",
    "Schema",
    "ServingConfig",
    "SourceConfig",
    "SparkConfig",
    "StoresConfig",
    "TrainingConfig",
    "dump_config",
    "load_config",
]

CONFIG_FILE = "conveyor.yaml"

EVENT_TIMESTAMP = "event_timestamp"
"""The column of clean data, training sets and Feast sources that holds each row's event time (UTC)."""

NULL_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?")
"""Cell values read as missing in every text source (`NAN_TOKENS` not in `integer` and `float` columns)."""

NAN_TOKENS = ("NaN", "nan")
"""In an `integer` or `float` column these are a non-finite number (`cleaning.non_finite` decides), not
a missing value, unless `cleaning.missing_tokens` lists them for the column (`init` does where it finds them)."""

ColumnType = Literal["integer", "float", "string", "boolean", "date", "datetime"]
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
    """The local CSV or Parquet file (kind csv, parquet), relative to the project folder."""
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
        return self


class Column(_Model):
    type: ColumnType
    role: Role


class Entity(_Model):
    key: str
    generated: bool = False
    """True when Conveyor makes the key: the row's 1-based position among the file's data rows."""


class EventTime(_Model):
    kind: Literal["datetime", "date_hour", "ingest_time"]
    columns: list[str] = Field(default_factory=list)
    format: str | None = None
    """strftime format of the datetime or date column; None lets Conveyor parse ISO 8601."""

    @model_validator(mode="after")
    def _columns_fit_kind(self) -> EventTime:
        wanted = {"datetime": 1, "date_hour": 2, "ingest_time": 0}[self.kind]
        if len(self.columns) != wanted:
            raise ValueError(
                f"event_time of kind {self.kind!r} takes {wanted} column(s), got {self.columns}"
            )
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


class LightGBMParams(_Model):
    n_estimators: int = Field(default=400, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    subsample: float = Field(default=1.0, gt=0, le=1)
    colsample_bytree: float = Field(default=0.9, gt=0, le=1)


RegressionMetric = Literal["r2", "rmse", "mae", "rmsle"]
ClassificationMetric = Literal["roc_auc", "pr_auc", "log_loss", "f1", "accuracy"]


class SearchConfig(_Model):
    """The hyperparameter search budget (Optuna), cross-validated on the training split only."""

    trials: int = Field(default=30, ge=0)
    """Trials per searched candidate (LightGBM; the linear baseline gets at most 12). 0: no search."""
    budget_s: float = Field(default=12.0, gt=0)
    """Wall-clock budget of the whole search, over all candidates: the untuned first trial always runs,
    a trial still running at the budget is pruned, and the trials done by then count."""
    timeout_s: float | None = Field(default=None, gt=0)
    """The former name of `budget_s`, still read from older project files: when set, it is the budget."""
    folds: int | Literal["auto"] = "auto"
    """Cross-validation folds (2-10): time-ordered when there is an event time, else (stratified) K-fold;
    auto: by the training rows (5 up to 5,000, 4 up to 200,000, else 3 then 2 over 1,000,000)."""

    @field_validator("folds")
    @classmethod
    def _fold_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 2 <= value <= 10:
            raise ValueError(f"folds must be 2-10 or 'auto', not {value}")
        return value

    @property
    def seconds(self) -> float:
        """The search budget: `budget_s`, or `timeout_s` where an older project file sets it."""
        return self.timeout_s if self.timeout_s is not None else self.budget_s

    @property
    def min_folds(self) -> int:
        """Rows a class needs at least (target checks): `folds`, or 4 with auto (as the former default,
        and more than auto ever uses for large data; a class with fewer cannot be told from noise)."""
        return self.folds if isinstance(self.folds, int) else 4

    def folds_for(self, rows: int) -> int:
        """The folds for a training split of `rows` rows: `folds`, or auto by size (fewer for more rows)."""
        if isinstance(self.folds, int):
            return self.folds
        return 5 if rows <= 5_000 else 4 if rows <= 200_000 else 3 if rows <= 1_000_000 else 2


class TrainingConfig(_Model):
    test_size: float = Field(default=0.2, gt=0, lt=1)
    split: Literal["auto", "time", "random"] = "auto"
    """auto: by time when the data has an event time, else a seeded (stratified) random split."""
    seed: int = 42
    threads: int | None = Field(default=None, ge=1)
    """Threads per model fit; None: 1, with cross-validation folds fitted in parallel on the usable CPUs."""
    metric: RegressionMetric | ClassificationMetric | None = None
    """The primary metric; None: r2 (regression), roc_auc (binary), accuracy (multiclass)."""
    search: SearchConfig = SearchConfig()
    lightgbm: LightGBMParams = LightGBMParams()
    """The untuned LightGBM: the search's first trial, and the whole model with search.trials: 0."""
    max_rows: Annotated[int, Field(ge=100)] | None = 2_000_000
    """Above this many rows of the training set, a seeded, time-aware sample of this many is trained and
    tested on ("trained on N of M rows"); None: every row, however many."""


class PromotionConfig(_Model):
    min_improvement: float = Field(default=0.0, ge=0)
    """How much the candidate must beat the trivial model and the current champion by (metric units)."""
    confidence: float = Field(default=0.95, ge=0.5, le=1)
    """Share of paired bootstrap resamples of the test split on which it must beat the trivial model."""


class BatchingConfig(_Model):
    max_batch: int = Field(256, ge=1)
    """At most this many rows are predicted (and logged) together, across concurrent requests."""
    max_wait_ms: float = Field(0.0, ge=0, le=100)
    """How long a batch may wait for more rows, only while other requests are in flight (a lone client never waits)."""


class ServingConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key_env: str | None = None
    """Name of an environment variable holding the API key; None serves without auth."""
    admin_key_env: str | None = None
    """Name of an environment variable holding the key of `POST /admin/reload`; None disables it."""
    max_batch: int = Field(10_000, ge=1)
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """uvicorn worker processes, each with its own model; `auto` (the default) is the number of usable cores."""
    reload_s: float = Field(10.0, ge=0)
    """How often each worker checks whether `@champion` moved (0: only at POST /admin/reload)."""
    batching: BatchingConfig = BatchingConfig()
    shadow: Annotated[int, Field(ge=1)] | str | dict[str, Annotated[int, Field(ge=1)] | str] | None = None
    """A model version (`3`) or alias (`challenger`) that also scores every request, off the request path;
    in a project with `models:`, one per model: `{tip: 3}`."""
    fsync: bool = False
    """fsync the prediction log before answering (survives power loss, not only a killed server)."""


class WebhookConfig(_Model):
    """An HTTP endpoint that receives a JSON alert when `conveyor monitor` finds drift or degradation."""

    url: str = Field(pattern=r"^https?://[^\s]+$")
    """Where the alert is posted (`https://hooks.example.com/conveyor`); no credentials in it."""
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    """An environment variable holding a secret, sent as the `secret_header` header; None: no header."""
    secret_header: str = Field("X-Conveyor-Secret", pattern=r"^[A-Za-z0-9-]{1,64}$")
    timeout_s: float = Field(5.0, gt=0, le=60)
    """Per attempt."""
    retries: int = Field(3, ge=0, le=10)
    """Further attempts after a failed one (connection error, timeout or a 5xx answer), with backoff."""


class MonitoringConfig(_Model):
    psi: float = Field(0.2, gt=0)
    p_value: float = Field(0.01, gt=0, lt=1)
    drift_share: float = Field(0.3, gt=0, le=1)
    min_rows: int = Field(30, ge=1)
    severe_psi: float = Field(1.0, gt=0)
    """One drifted feature with a PSI this large is dataset drift by itself (e.g. a value never seen in training)."""
    window: int | None = Field(None, ge=1)
    """Compare only the last N logged predictions; None uses the whole log."""
    performance_drop: float = Field(0.1, gt=0, lt=1)
    """On labeled predictions, the primary metric worse than the champion's test score by more than
    this share of it is `degraded` (0.1: r2 0.90 -> below 0.81; rmse 40 -> above 44)."""
    wasserstein: float = Field(0.1, gt=0)
    """A numeric feature drifts when its Wasserstein distance over the reference std reaches this (and KS
    is significant): one figure for a change of location, spread or shape (a 1.25x spread is about 0.2)."""
    js: float = Field(0.1, gt=0, le=1)
    """A categorical feature drifts when its Jensen-Shannon distance (base 2) reaches this (and chi-square
    is significant)."""
    missing: float = Field(0.05, gt=0, le=1)
    """A feature drifts when its share of nulls changes by this much (0.05: 0 % -> 5 %), significantly."""
    point_mass: float = Field(0.03, gt=0, le=1)
    """A numeric feature drifts when one value's share grows by this much (a spike: 0 % -> 3 %), significantly."""
    unseen: float = Field(0.01, gt=0, le=1)
    """A categorical feature drifts when this share of rows (beyond the expected) has a level the reference
    never had, significantly."""
    performance_window: str = Field("1d", pattern=r"^[1-9][0-9]{0,3}[hdw]$")
    """Labeled predictions are also scored per window of serving time this long: `1h`, `1d` (midnight UTC),
    `7d` or `1w` (Mondays); a window with fewer than `min_rows` labels shows its count without a score."""
    on_drift: Literal["none", "alert", "retrain"] = "none"
    """What `conveyor monitor --act` does when the served traffic drifts: nothing, post an alert to
    `monitoring.webhook`, or retrain on a window that includes the labeled traffic (and alert)."""
    on_degraded: Literal["none", "alert", "retrain"] = "none"
    """What `conveyor monitor --act` does when labeled predictions score `degraded`: as `on_drift`."""
    fresh_share: float = Field(0.5, gt=0, lt=1)
    """Retraining: the newest share of the labeled traffic is kept out of training, as the fresh data the
    challenger and the champion are compared on; the older rest is appended to the training data."""
    webhook: WebhookConfig | None = None
    """Where alerts are posted (JSON), on drift or degradation; None: no alerts leave the machine."""


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class MlflowStore(_Model):
    """MLflow on a tracking server the team runs (runs, registry and proxied artifacts)."""

    tracking_uri_env: str = Field("MLFLOW_TRACKING_URI", pattern=_ENV_NAME)
    """The environment variable holding the server's URI (`http://host:5000`); never the URI itself."""


class PostgresStore(_Model):
    """A PostgreSQL database; its connection string is read from an environment variable."""

    kind: Literal["postgres"] = "postgres"
    dsn_env: str = Field(pattern=_ENV_NAME)
    """The environment variable holding `postgresql://user:password@host:port/db`; never the DSN itself."""


class RedisStore(_Model):
    """Redis as the online store; its URL is read from an environment variable."""

    kind: Literal["redis"] = "redis"
    url_env: str = Field("REDIS_URL", pattern=_ENV_NAME)
    """The environment variable holding `redis://[:password@]host:port/db`; never the URL itself."""


class S3Store(_Model):
    """A bucket and key prefix in an S3-compatible object store. The endpoint, region and
    credentials come from the standard AWS environment variables (`AWS_ENDPOINT_URL`,
    `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`)."""

    kind: Literal["s3"] = "s3"
    uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    """`s3://bucket/prefix`: where the files go (no credentials here)."""


class StoresConfig(_Model):
    """Where a project keeps its state when a team shares it; every entry left out stays on the
    embedded default in the project folder (SQLite, local files). Connection strings and keys are
    only ever named by environment variable."""

    mlflow: MlflowStore | None = None
    """Tracking and model registry on an MLflow server; None: `mlflow.db` and `mlartifacts/`."""
    registry: PostgresStore | None = None
    """The Feast registry on PostgreSQL (Feast's SQL registry); None: `feature_repo/data/registry.pb`."""
    online: RedisStore | None = None
    """The Feast online store on Redis; None: SQLite (`features.online_store`)."""
    offline: Annotated[S3Store | PostgresStore, Field(discriminator="kind")] | None = None
    """The Feast offline store's data: Parquet files under an S3 prefix, or PostgreSQL tables; None: local Parquet."""
    lock: PostgresStore | None = None
    """Where the project lock lives: a PostgreSQL advisory lock; None: `stores.registry`'s database when
    set, else a lock file in `.conveyor/` (one machine)."""

    def shared(self) -> bool:
        """True when any state lives outside the project folder."""
        return any(v is not None for v in (self.mlflow, self.registry, self.online, self.offline, self.lock))


class SparkConfig(_Model):
    """The Spark session of `engine: spark`: where it runs and how it is configured."""

    master: str = Field("local[*]", min_length=1)
    """The master URI: `local[*]` (this machine), `spark://host:7077` (standalone), `yarn`, `k8s://https://host:443`."""
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Passed to the session builder as it is (`spark.driver.memory: 4g`, `spark.executor.instances: 4`)."""
    app_name: str | None = None
    """The application's name on the cluster; None: `conveyor-<project name>`."""

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        import re

        if not re.match(r"^(local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$", value):
            raise ValueError(f"{value!r} is not a Spark master URI (local[*], local[2], spark://host:7077, yarn, "
                             "k8s://https://host:443)")
        return value


class ModelSpec(_Model):
    """One of several models of a project (`models:`): its own target, task and inputs, over the
    project's shared feature views. Registered as `<project>-<model>`, with its own gate and
    `@champion`, served at `/models/<model>/predict`."""

    target: str
    """A column of `schema.columns` (not dropped): what this model predicts."""
    task: Task
    features: list[str] | None = None
    """The model's inputs, among the project's (`schema` features and engineered features); None:
    all of them except every model's target."""
    metric: RegressionMetric | ClassificationMetric | None = None
    """This model's primary metric; None: `training.metric`, else the task's default."""


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


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (value {shown}); check its spelling"
    return f"{where}: {shown} is not valid: {error['msg']}"


def load_config(path: Path) -> Config:
    """Read and validate a project file; every problem is a ConfigError naming the key."""
    import yaml

    if not path.is_file():
        raise ConfigError(
            f"{path}: no project file here; create one with `conveyor init --csv FILE --target COL`"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_strict_loader())  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    owner = _feature_owner(path, data)
    if owner is not None:
        data = {**data, "features": {**owner.features.model_dump(mode="json"), "repo": data["features"]["repo"]}}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{path}: invalid project file\n  {problems}") from None
    if owner is not None:
        config.features._owner = owner.name
    return config


class _DuplicateKey(Exception):
    """A key given twice in one mapping of the project file."""


def _strict_loader() -> type:
    """A YAML SafeLoader that refuses a key given twice in one mapping, naming both lines.

    PyYAML keeps the last value silently: an `api_key_env` written twice, the second time empty,
    would turn authentication off without a word.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first != line:
                raise _DuplicateKey(f"key {key!r} is given twice (lines {first} and {line}); keep one")
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


def _feature_owner(path: Path, data: dict[str, Any]) -> Config | None:
    """With `features.repo`: the Config of the project owning the feature repo, whose feature
    definitions this project reads. None when that folder holds no conveyor.yaml: the features
    stage then says what is missing (a run-time error, not a config one, as a store that is not
    built yet is)."""
    features = data.get("features")
    if not isinstance(features, dict) or features.get("repo") is None:
        return None
    repo = features["repo"]
    if not isinstance(repo, str):
        raise ConfigError(f"{path}: features.repo: {repo!r} is not a folder path")
    own = sorted(set(features) - {"repo"})
    if own:
        raise ConfigError(
            f"{path}: features.repo: the features are those of the project in {repo!r}; "
            f"remove features.{', features.'.join(own)}"
        )
    folder = Path(repo).expanduser()
    folder = folder if folder.is_absolute() else path.parent / folder
    owner_file = folder / "conveyor.yaml"
    if not owner_file.is_file():
        return None
    if owner_file.resolve() == path.resolve():
        raise ConfigError(f"{path}: features.repo: {repo!r} is this project itself; remove features.repo")
    owner = load_config(owner_file)
    if owner.features.repo is not None:
        raise ConfigError(
            f"{path}: features.repo: the project in {repo!r} reads its features from another project "
            f"({owner.features.repo!r}); point features.repo at the project owning the feature repo"
        )
    return owner


def dump_config(config: Config, path: Path, header: str = "") -> None:
    """Write a project file, keys in a readable order."""
    import yaml

    class Flow(dict):  # type: ignore[type-arg]
        """A mapping written on one line: one column's type and role."""

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
    data = config.model_dump(mode="json", by_alias=True)
    if not data["models"]:
        del data["models"]  # a one-model project's file stays as it was
    if not config.stores.shared():
        del data["stores"]  # the embedded default needs no section
    else:
        data["stores"] = {k: v for k, v in data["stores"].items() if v is not None}
    if config.engine == "polars" and config.spark == SparkConfig():
        del data["engine"], data["spark"]  # the default engine needs no section
    if config.features.repo is not None:
        data["features"] = {"repo": config.features.repo}  # the rest is the other project's
    else:
        del data["features"]["repo"]
    for key in ("path", "dsn_env", "table", "query", "uri", "format", "incremental"):
        if data["source"].get(key, "") is None:
            del data["source"][key]  # the keys of other source kinds
    if config.source.kind == "postgres" and config.source.decimal == "." and config.source.thousands is None:
        for key in ("delimiter", "encoding", "decimal", "thousands"):
            data["source"].pop(key, None)  # how a file's text is written: the server's CSV is always the same
    data["schema"]["columns"] = {k: Flow(v) for k, v in data["schema"]["columns"].items()}
    search = data["training"]["search"]
    if search.get("timeout_s") is None:
        search.pop("timeout_s", None)  # the former name of budget_s: only where an older file set it
    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
