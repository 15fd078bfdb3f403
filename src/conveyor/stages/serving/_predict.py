"""Predictions: feature rows by raw values or by entity key, and the public answer."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from conveyor.core.records import PredictionRecord, finite_or_none
from conveyor.stages.serving._batch import Served
from conveyor.stages.serving._ports import FeatureReader, ServedModel

__all__ = ["public_answer", "rows_by_entity", "rows_by_value"]


def rows_by_value(model: ServedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated request rows (dicts of the features) with the project's missing-value rule applied."""
    return [model.clean(row) for row in rows]


def rows_by_entity(reader: FeatureReader, keys: list[Any]) -> list[dict[str, Any]]:
    """The online store's rows of `keys` (cleaned in prepare already); a 404 naming unknown keys."""
    found = reader.get(keys)
    unknown = [key for key, row in zip(keys, found, strict=True) if row is None]
    if unknown:
        shown = ", ".join(repr(k)[:64] for k in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        raise HTTPException(404, f"no features in the online store for {reader.key} = [{shown}]")
    # a NaN from the store means missing, as None does; the log holds standard JSON only
    return [{name: finite_or_none(value) for name, value in row.items()} for row in found if row is not None]


def public_answer(served: Served) -> dict[str, Any]:
    """The body of a 200: the model that answered, and one prediction per row, in order."""
    return {
        "model": {"name": served.model.name, "version": served.model.version},
        "predictions": [_public(record) for record in served.records],
    }


def _public(record: PredictionRecord) -> dict[str, Any]:
    result: dict[str, Any] = {"request_id": record.request_id, "prediction": record.prediction}
    if record.probability is not None:
        result["probability"] = record.probability
    if record.entity is not None:
        result["entity"] = record.entity
    if record.warnings:
        result["warnings"] = dict(record.warnings)
    return result
