"""The one exception tree of Conveyor.

    ConveyorError                 every error a user can cause or fix
     +-- ConfigError              conveyor.yaml is missing, malformed or invalid
     +-- DataError                a source file is unreadable, malformed or lacks a column
     +-- EngineError              the data engine (Spark) cannot start or run: no Java, no cluster
     +-- FeatureStoreError        Feast could not apply, retrieve or materialize
     +-- TrainingError            no model could be trained, logged or registered
     +-- ServingError             the service cannot start (no champion, bad port, ...)
     +-- MonitoringError          nothing to monitor, or no reference to compare with
     +-- LockError                another process holds the project lock (--no-wait), or its
                                  lock service cannot be reached
     +-- ServiceError             a shared service (PostgreSQL, Redis, S3, MLflow) is down or lacks something
          +-- ServiceUnavailable  a service serving reads (Redis, PostgreSQL) does not answer now

The CLI prints the message of any ConveyorError and exits non-zero without a traceback,
so every message says what went wrong, where, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConveyorError",
    "DataError",
    "EngineError",
    "FeatureStoreError",
    "LockError",
    "MonitoringError",
    "ServiceError",
    "ServiceUnavailable",
    "ServingError",
    "TrainingError",
]


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""

    exit_code = 1


class ConfigError(ConveyorError):
    """The project file is missing, malformed, or holds an invalid value."""

    exit_code = 2


class DataError(ConveyorError):
    """Input data cannot be read as the project file says."""


class EngineError(ConveyorError):
    """The data engine cannot start or run (`engine: spark`: Java, PySpark, the cluster)."""


class FeatureStoreError(ConveyorError):
    """The feature store could not do what a stage asked of it."""


class TrainingError(ConveyorError):
    """Training, tracking or registering a model failed."""


class ServingError(ConveyorError):
    """The prediction service cannot start or answer."""


class MonitoringError(ConveyorError):
    """Monitoring has no data or no reference to work with."""


class LockError(ConveyorError):
    """Another process holds the project's lock (and the command was told not to wait), or the
    service holding shared locks cannot be reached. Exit code 75 (EX_TEMPFAIL): try again later."""

    exit_code = 75


class ServiceError(ConveyorError):
    """A shared service the project is configured to use is down, or lacks what it needs."""


class ServiceUnavailable(ServiceError):
    """A shared service (Redis, PostgreSQL, ...) does not answer now; it may come back.

    `service` names it (`redis`, `postgresql`); the message is one line: what is unavailable,
    where, and why (`online store unavailable: Redis at 127.0.0.1:6379 refused the connection`).
    """

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
