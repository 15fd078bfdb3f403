"""The one exception tree of Conveyor.

    ConveyorError                 every error a user can cause or fix
     +-- ConfigError              conveyor.yaml is missing, malformed or invalid
     +-- DataError                a source file is unreadable, malformed or lacks a column
     +-- FeatureStoreError        Feast could not apply, retrieve or materialize
     +-- TrainingError            no model could be trained, logged or registered
     +-- ServingError             the service cannot start (no champion, bad port, ...)
     +-- MonitoringError          nothing to monitor, or no reference to compare with
     +-- ServiceUnavailable       a shared service (Redis, PostgreSQL) does not answer now

The CLI prints the message of any ConveyorError and exits non-zero without a traceback,
so every message says what went wrong, where, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConveyorError",
    "DataError",
    "FeatureStoreError",
    "MonitoringError",
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


class FeatureStoreError(ConveyorError):
    """The feature store could not do what a stage asked of it."""


class TrainingError(ConveyorError):
    """Training, tracking or registering a model failed."""


class ServingError(ConveyorError):
    """The prediction service cannot start or answer."""


class MonitoringError(ConveyorError):
    """Monitoring has no data or no reference to work with."""


class ServiceUnavailable(ConveyorError):
    """A shared service (Redis, PostgreSQL, ...) does not answer now; it may come back.

    `service` names it (`redis`, `postgresql`); the message is one line: what is unavailable,
    where, and why (`online store unavailable: Redis at 127.0.0.1:6379 refused the connection`).
    """

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
