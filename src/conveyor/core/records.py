"""Records shared by stages that must not import each other.

`PredictionRecord` is one served prediction: serving writes it, monitoring reads it back,
through `PredictionLog` (one JSON object per line). The reference columns are the names the
promotion step writes next to the champion's training set and the monitor reads back.

Only the standard library here: core imports nothing heavy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

__all__ = [
    "REFERENCE_PREDICTION",
    "REFERENCE_PROBABILITY",
    "PredictionBatch",
    "PredictionRecord",
    "PredictionSource",
    "finite_or_none",
]

REFERENCE_PREDICTION = "__prediction"
"""Column of `data/reference/<name>-v<N>.parquet`: the champion's prediction on each training row."""

REFERENCE_PROBABILITY = "__probability"
"""Column of the reference, classification only: the probability the model gave its answer."""

PredictionSource = Literal["rows", "entities"]
"""How a request gave the features: raw `rows`, or `entities` keys read from the online store."""

_SOURCES: frozenset[str] = frozenset(get_args(PredictionSource))


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction as served and logged. `to_json` is the log's line format (without newline)."""

    request_id: str
    timestamp: datetime
    """When the answer was computed (UTC, timezone-aware)."""
    model: str
    model_version: str
    source: PredictionSource
    inputs: Mapping[str, Any]
    """The feature values the model saw, after the project's missing-value rule (None = missing)."""
    prediction: Any
    """A float (regression) or a class label (classification)."""
    probability: float | None = None
    """Classification only: the probability of the positive class (binary) or of the answer."""
    entity: Any = None
    """The entity key, for `source == "entities"`."""
    warnings: Mapping[str, str] | None = None
    """Features whose value the model never saw in training (`unseen category`, `above/below the training
    range`), answered as missing: feature -> why. None when there is none."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: absent `probability`/`entity` are left out, as the log always did."""
        data: dict[str, Any] = {"request_id": self.request_id, "prediction": self.prediction}
        if self.probability is not None:
            data["probability"] = self.probability
        if self.entity is not None:
            data["entity"] = self.entity
        if self.warnings:
            data["warnings"] = dict(self.warnings)
        data.update(
            timestamp=self.timestamp.isoformat(),
            model=self.model,
            model_version=self.model_version,
            source=self.source,
            inputs=dict(self.inputs),
        )
        return data

    def to_json(self) -> str:
        """Standard JSON, one line: a NaN or an infinity is a ValueError, never written."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False, default=_plain)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionRecord:
        """A record from its JSON object; ValueError naming what is missing or wrong."""
        missing = [k for k in ("request_id", "timestamp", "model", "model_version", "source", "inputs", "prediction")
                   if k not in data]
        if missing:
            raise ValueError(f"prediction record without {', '.join(missing)}")
        source = data["source"]
        if source not in _SOURCES:
            raise ValueError(f"prediction record with source {source!r}; expected 'rows' or 'entities'")
        inputs = data["inputs"]
        if not isinstance(inputs, Mapping):
            raise ValueError(f"prediction record with inputs of type {type(inputs).__name__}; expected an object")
        probability = data.get("probability")
        return cls(
            request_id=str(data["request_id"]),
            timestamp=datetime.fromisoformat(str(data["timestamp"])),
            model=str(data["model"]),
            model_version=str(data["model_version"]),
            source=cast(PredictionSource, source),
            inputs=dict(inputs),
            prediction=data["prediction"],
            probability=None if probability is None else float(probability),
            entity=data.get("entity"),
            warnings=dict(data["warnings"]) if isinstance(data.get("warnings"), Mapping) else None,
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> PredictionRecord:
        """A record from one log line; ValueError if it is not one (json.JSONDecodeError is a ValueError)."""
        data = json.loads(line, parse_constant=_reject_constant)
        if not isinstance(data, dict):
            raise ValueError(f"a prediction record is a JSON object, not {type(data).__name__}")
        return cls.from_dict(data)


class PredictionBatch(Sequence[PredictionRecord]):
    """Predictions answered together (a micro-batch), held by column: one `PredictionRecord` per row.

    Indexing gives a row's record (built on demand); `objects()` gives every row's JSON object,
    the same as `PredictionRecord.to_dict()`, from the columns in one pass. The prediction log
    writes a batch in one append from those objects, so no record object is made on the hot path.
    """

    __slots__ = (
        "entities", "inputs", "model", "model_version", "predictions", "probabilities", "request_ids", "sources",
        "timestamp", "warnings",
    )

    def __init__(
        self, *, request_ids: list[str], timestamp: datetime, model: str, model_version: str,
        sources: list[PredictionSource], inputs: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        probabilities: Sequence[Any] | None = None, entities: Sequence[Any] | None = None,
        warnings: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        self.request_ids = request_ids
        self.timestamp = timestamp
        self.model = model
        self.model_version = model_version
        self.sources = sources
        """One per row."""
        self.inputs = inputs
        """Feature -> one value per row, after the missing-value rule (None = missing); or one mapping per row."""
        self.predictions = predictions
        self.probabilities = probabilities
        self.entities = entities
        """One per row (None for a row given by value), or None when no row came by entity."""
        self.warnings = warnings or {}
        """Only the rows with a warning, by index: feature -> why."""

    def __len__(self) -> int:
        return len(self.request_ids)

    def __iter__(self) -> Iterator[PredictionRecord]:
        return (self._record(index) for index in range(len(self)))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._record(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("prediction batch index out of range")
        return self._record(index)

    def _record(self, index: int) -> PredictionRecord:
        return PredictionRecord(
            request_id=self.request_ids[index], timestamp=self.timestamp, model=self.model,
            model_version=self.model_version, source=self.sources[index],
            inputs=self._inputs(index),
            prediction=self.predictions[index],
            probability=None if self.probabilities is None else self.probabilities[index],
            entity=None if self.entities is None else self.entities[index],
            warnings=self.warnings.get(index) or None,
        )

    def _inputs(self, index: int) -> dict[str, Any]:
        if isinstance(self.inputs, Mapping):
            return {name: values[index] for name, values in self.inputs.items()}
        return dict(self.inputs[index])

    def input_columns(self) -> list[tuple[str, Sequence[Any]]]:
        """The inputs by column (of every row's keys, when they were given by row)."""
        if isinstance(self.inputs, Mapping):
            return list(self.inputs.items())
        names = list(dict.fromkeys(name for row in self.inputs for name in row))
        return [(name, [row.get(name) for row in self.inputs]) for name in names]

    def objects(self) -> list[dict[str, Any]]:
        """Each row's JSON object (`PredictionRecord.to_dict()`, keys in the same order), built by column."""
        stamp = self.timestamp.isoformat()
        model, version = self.model, self.model_version
        if isinstance(self.inputs, Mapping):
            names = list(self.inputs)
            rows: Iterator[dict[str, Any]] = (dict(zip(names, values)) for values in zip(*self.inputs.values())) \
                if names else ({} for _ in range(len(self)))
        else:
            rows = (dict(row) for row in self.inputs)
        if self.probabilities is None and self.entities is None and not self.warnings:  # the common case
            return [
                {"request_id": request_id, "prediction": prediction, "timestamp": stamp, "model": model,
                 "model_version": version, "source": source, "inputs": values}
                for request_id, prediction, source, values in zip(
                    self.request_ids, self.predictions, self.sources, rows, strict=True)
            ]
        found: list[dict[str, Any]] = []
        for index, values in enumerate(rows):
            data: dict[str, Any] = {"request_id": self.request_ids[index], "prediction": self.predictions[index]}
            if self.probabilities is not None and self.probabilities[index] is not None:
                data["probability"] = self.probabilities[index]
            if self.entities is not None and self.entities[index] is not None:
                data["entity"] = self.entities[index]
            if warned := self.warnings.get(index):
                data["warnings"] = dict(warned)
            data.update(timestamp=stamp, model=model, model_version=version, source=self.sources[index],
                        inputs=values)
            found.append(data)
        return found


def finite_or_none(value: Any) -> Any:
    """A float NaN or infinity becomes None (missing); anything else is returned as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    """JSON for what `json` does not know: numpy scalars by `.item()`, anything else as text."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")
