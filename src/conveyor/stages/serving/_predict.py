"""Predictions: feature rows by raw values or by entity key, the model, the log, the answer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

from conveyor.core.records import PredictionRecord, PredictionSource, finite_or_none
from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._ports import FeatureReader, ServedModel, ServiceParts

__all__ = ["answer", "rows_by_entity", "rows_by_value"]


def rows_by_value(model: ServedModel, rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """Validated request rows as dicts by feature name, with the project's missing-value rule applied."""
    return [model.clean(row.model_dump(by_alias=True)) for row in rows]


def rows_by_entity(reader: FeatureReader, keys: list[Any]) -> list[dict[str, Any]]:
    """The online store's rows of `keys` (cleaned in prepare already); a 404 naming unknown keys."""
    found = reader.get(keys)
    unknown = [key for key, row in zip(keys, found, strict=True) if row is None]
    if unknown:
        shown = ", ".join(repr(k)[:64] for k in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        raise HTTPException(404, f"no features in the online store for {reader.key} = [{shown}]")
    # a NaN from the store means missing, as None does; the log holds standard JSON only
    return [{name: finite_or_none(value) for name, value in row.items()} for row in found if row is not None]


def answer(
    parts: ServiceParts,
    metrics: ServiceMetrics,
    rows: list[dict[str, Any]],
    source: PredictionSource,
    entities: list[Any] | None = None,
) -> dict[str, Any]:
    """Predict `rows`, append them to the log (durable before the answer leaves), and build the answer."""
    model = parts.model
    outputs = model.predict_records(rows, cleaned=True)
    predictions, probabilities = outputs["prediction"], outputs.get("probability")
    now = datetime.now(UTC)
    records = [
        PredictionRecord(
            request_id=uuid.uuid4().hex,
            timestamp=now,
            model=model.name,
            model_version=model.version,
            source=source,
            inputs=row,
            prediction=predictions[index],
            probability=None if probabilities is None else probabilities[index],
            entity=None if entities is None else entities[index],
        )
        for index, row in enumerate(rows)
    ]
    parts.log.append(records)
    metrics.served(source, outputs)
    return {
        "model": {"name": model.name, "version": model.version},
        "predictions": [_public(record) for record in records],
    }


def _public(record: PredictionRecord) -> dict[str, Any]:
    result: dict[str, Any] = {"request_id": record.request_id, "prediction": record.prediction}
    if record.probability is not None:
        result["probability"] = record.probability
    if record.entity is not None:
        result["entity"] = record.entity
    return result
