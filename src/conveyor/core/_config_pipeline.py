"""The sections of `conveyor.yaml` about the models and services: training, promotion, serving,
monitoring, stores, Spark and several models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from conveyor.core._config_data import Task, _Model


class LightGBMParams(_Model):
    n_estimators: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """Boosting rounds; auto: early stopping on the last 15 % of the training split (by time, else random)."""
    learning_rate: float = Field(default=0.03, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    subsample: float = Field(default=1.0, gt=0, le=1)
    colsample_bytree: float = Field(default=0.9, gt=0, le=1)
    budget_s: float = Field(default=15.0, gt=0)
    """Wall-clock budget of the final fit, the early-stopping fit that picks its rounds included: a fit
    still improving when it runs out ends there (the run table says so). Only for a training split of
    100,000 rows or more: a smaller one fits in seconds and stays the same to the round from run to run."""


RegressionMetric = Literal["r2", "rmse", "mae", "rmsle"]
ClassificationMetric = Literal["roc_auc", "pr_auc", "log_loss", "f1", "accuracy"]


class SearchConfig(_Model):
    """The hyperparameter search budget (Optuna), cross-validated on the training split only."""

    trials: int = Field(default=4, ge=0)
    """Trials per searched candidate (LightGBM; the linear baseline gets at most 12). 0: no search."""
    budget_s: float = Field(default=40.0, gt=0)
    """Wall-clock budget of the whole search, over all candidates: the untuned first trial always runs,
    a trial still running at the budget is pruned, and the trials done by then count."""
    timeout_s: float | None = Field(default=None, gt=0)
    """The former name of `budget_s`, still read from older project files: when set, it is the budget."""
    folds: int | Literal["auto"] = "auto"
    """Cross-validation folds (2-10): time-ordered when there is an event time, else (stratified) K-fold;
    auto: by the training rows (5 up to 5,000, 4 up to 200,000, else 3 then 2 over 1,000,000)."""

    sample_rows: int = Field(default=50_000, ge=1_000)
    """The search cross-validates on at most this many rows of the training split (a seeded sample, in
    time order); the final fit reads every row. A trial costs about its rows times its rounds."""
    average_untuned: bool = True
    """When the search's choice is not the untuned LightGBM, the final LightGBM averages the two
    (each refit on the whole training split): a hedge against a CV choice the test period disagrees with."""

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
    compiled: bool = True
    """Predict with the champion's LightGBM trees compiled to native code (lleaves), compiled in the
    background and cached in `.conveyor/compiled/`; LightGBM answers until then, and if it fails."""


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
