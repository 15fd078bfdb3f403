"""What the service needs from the rest of Conveyor, as small Protocols.

Serving imports no other stage: the runner (`conveyor.runner._serve`) adapts the champion
(training), the online store (features) and the prediction log (monitoring) to these, and
tests pass tiny in-memory implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from conveyor.core.records import PredictionRecord

__all__ = ["FeatureReader", "LabelSink", "PredictionSink", "Reloader", "ServedModel", "ServiceCheck", "ServiceParts"]


class ServedModel(Protocol):
    """The model a service answers with: where it came from, its inputs, and its predictions."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task(self) -> str:
        """`regression` or `classification`."""
        ...
    @property
    def features(self) -> list[str]: ...

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with the project's missing-value rule applied (`cleaning.null_values` -> None)."""
        ...

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        """`{"prediction": [...]}`, plus `"probability"` for classification; one value per row."""
        ...

    def screen(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Per cleaned row, the features whose value training never saw (an unseen category, a number
        out of the training range): name -> why; `{}` for a row without any."""
        ...

    # Optional, read by `/health` and `/metrics` when present: `predictor`, a dict with `predictor`
    # (`compiled` or `lightgbm`: which answers now) and `compile` (how compiling the trees stands).


class FeatureReader(Protocol):
    """Feature rows by entity key (the online store)."""

    @property
    def key(self) -> str:
        """The name of the entity key."""
        ...

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        """One row per key, in order; None for a key the store does not know."""
        ...


class PredictionSink(Protocol):
    """Where served predictions go, durably, before the answer is sent (the prediction log)."""

    def append(self, records: Sequence[PredictionRecord]) -> None: ...


class Reloader(Protocol):
    """Where `@champion` points now: the newly loaded model when it moved, else None.

    Called off the request path (a poller thread, `POST /admin/reload`); `force` skips any
    cheap "nothing changed" check. The runner builds it over training's `load_champion`.
    """

    def __call__(self, *, force: bool = False) -> ServedModel | None: ...


class ServiceCheck(Protocol):
    """The shared services answers depend on (Redis, PostgreSQL), by name: None when one answers,
    else the one-line reason it does not. Called by `/health`; it must return within a few seconds."""

    def __call__(self) -> dict[str, str | None]: ...


class LabelSink(Protocol):
    """Where `POST /labels` goes: checks (request id, label) pairs against the prediction log and the
    labels already recorded, records the good ones, and reports `accepted`, `rejected`, `reasons`, ..."""

    def __call__(self, labels: list[tuple[str, Any]], *, replace: bool) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServiceParts:
    """Everything a running service holds, opened before the port is bound."""

    model: ServedModel
    features: FeatureReader
    log: PredictionSink
    value_buckets: tuple[float, ...] | None = None
    """Histogram buckets for `conveyor_prediction_value` (e.g. deciles of the reference predictions)."""
    reload: Reloader | None = None
    """How the service follows `@champion` (hot swap); None serves `model` until restarted."""
    shadow: ServedModel | None = None
    """A challenger that scores every request off the request path; its outputs go to `shadow_log`."""
    shadow_log: PredictionSink | None = None
    services: ServiceCheck | None = None
    """What `/health` checks besides the process (the online store's Redis, the registry's
    PostgreSQL); None: nothing shared."""
    labels: LabelSink | None = None
    """Where `POST /labels` records labels (needs `serving.admin_key_env`); None: no such endpoint."""
    monitor_gauges: Callable[[], Sequence[tuple[str, dict[str, str], float]]] | None = None
    """The last monitor run's figures as `(name, labels, value)`, read at each `/metrics` scrape."""
    monitor_help: dict[str, str] | None = None
    """Help text of those gauges, by name."""
