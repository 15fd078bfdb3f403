"""The project file, `conveyor.yaml`, as typed, validated, immutable objects.

Every model is strict, frozen and forbids unknown keys, so a typo is an error naming the key,
the value and what was expected, never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from conveyor.core.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "EVENT_TIMESTAMP",
    "NULL_TOKENS",
    "Column",
    "Config",
    "Entity",
    "EventTime",
    "FeaturesConfig",
    "MonitoringConfig",
    "PromotionConfig",
    "Schema",
    "ServingConfig",
    "SourceConfig",
    "TrainingConfig",
    "dump_config",
    "load_config",
]

CONFIG_FILE = "conveyor.yaml"

EVENT_TIMESTAMP = "event_timestamp"
"""The column of clean data, training sets and Feast sources that holds each row's event time (UTC)."""

NULL_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?")
"""Cell values read as missing in every text source."""

ColumnType = Literal["integer", "float", "string", "boolean", "date", "datetime"]
Role = Literal["numeric", "categorical", "id", "event_time", "ignore"]
Task = Literal["regression", "classification"]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class SourceConfig(_Model):
    """Where the raw data comes from."""

    kind: Literal["csv"] = "csv"
    path: str
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Literal["utf-8", "utf-8-sig", "latin-1"] = "utf-8"
    on_bad_lines: Literal["error", "quarantine"] = "error"
    """What to do with a row whose field count differs from the header's."""


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


class FeaturesConfig(_Model):
    online_store: Literal["sqlite"] = "sqlite"
    offline_store: Literal["duckdb"] = "duckdb"


class LightGBMParams(_Model):
    n_estimators: int = Field(400, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(20, ge=1)
    subsample: float = Field(1.0, gt=0, le=1)
    colsample_bytree: float = Field(0.9, gt=0, le=1)


class TrainingConfig(_Model):
    test_size: float = Field(0.2, gt=0, lt=1)
    split: Literal["auto", "time", "random"] = "auto"
    """auto: by time when the data has an event time, else a seeded (stratified) random split."""
    seed: int = 42
    threads: int = Field(2, ge=1)
    lightgbm: LightGBMParams = LightGBMParams()


class PromotionConfig(_Model):
    min_improvement: float = Field(0.0, ge=0)
    """How much the candidate must beat the baseline and the current champion by."""


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
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    """uvicorn worker processes, each with its own model; `auto` is the number of usable cores."""
    reload_s: float = Field(10.0, ge=0)
    """How often each worker checks whether `@champion` moved (0: only at POST /admin/reload)."""
    batching: BatchingConfig = BatchingConfig()
    shadow: Annotated[int, Field(ge=1)] | str | None = None
    """A model version (`3`) or alias (`challenger`) that also scores every request, off the request path."""
    fsync: bool = False
    """fsync the prediction log before answering (survives power loss, not only a killed server)."""


class MonitoringConfig(_Model):
    psi: float = Field(0.2, gt=0)
    p_value: float = Field(0.01, gt=0, lt=1)
    drift_share: float = Field(0.3, gt=0, le=1)
    min_rows: int = Field(30, ge=1)
    severe_psi: float = Field(1.0, gt=0)
    """One drifted feature with a PSI this large is dataset drift by itself (e.g. a value never seen in training)."""
    window: int | None = Field(None, ge=1)
    """Compare only the last N logged predictions; None uses the whole log."""


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

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

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

    @property
    def schema(self) -> Schema:  # type: ignore[override]
        return self.schema_

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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{path}: invalid project file\n  {problems}") from None


def dump_config(config: Config, path: Path, header: str = "") -> None:
    """Write a project file, keys in a readable order."""
    import yaml

    class Flow(dict):  # type: ignore[type-arg]
        """A mapping written on one line: one column's type and role."""

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
    data = config.model_dump(mode="json", by_alias=True)
    data["schema"]["columns"] = {k: Flow(v) for k, v in data["schema"]["columns"].items()}
    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
