"""Predictions: feature rows by raw values or by entity key, and the public answer."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from conveyor.core.config import Config
from conveyor.core.errors import DataError
from conveyor.core.records import finite_or_none
from conveyor.stages.serving._batch import Served
from conveyor.stages.serving._ports import FeatureReader, ServedModel

__all__ = ["answer_json", "predict_rows", "public_answer", "rows_by_entity", "rows_by_value"]


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
    batch, start, stop = served.batch, served.start, served.stop
    ids, predictions = batch.request_ids[start:stop], batch.predictions[start:stop]
    probabilities, entities = batch.probabilities, batch.entities
    warnings = {i - start: w for i, w in batch.warnings.items() if start <= i < stop}
    answers: list[dict[str, Any]]
    if probabilities is None and entities is None and not warnings:  # the common case, in one comprehension
        answers = [{"request_id": r, "prediction": p} for r, p in zip(ids, predictions, strict=True)]
    else:
        answers = []
        for index, (request_id, prediction) in enumerate(zip(ids, predictions, strict=True)):
            result: dict[str, Any] = {"request_id": request_id, "prediction": prediction}
            if probabilities is not None and probabilities[start + index] is not None:
                result["probability"] = probabilities[start + index]
            if entities is not None and entities[start + index] is not None:
                result["entity"] = entities[start + index]
            if index in warnings:
                result["warnings"] = dict(warnings[index])
            answers.append(result)
    return {"model": {"name": served.model.name, "version": served.model.version}, "predictions": answers}


def answer_json(served: Served) -> bytes:
    """`public_answer` as JSON bytes (orjson; a NaN is null, as before)."""
    import orjson

    return orjson.dumps(public_answer(served), default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)


def _plain(value: Any) -> Any:
    """What orjson does not know: numpy scalars by `.item()`, anything else as text (as pydantic's to_json did)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def predict_rows(config: Config, model: ServedModel, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """What POST /predict answers for `rows` of raw values, without HTTP and without the log.

    Each batch of `serving.max_batch` rows goes the request's way: its JSON is validated by the
    same validator as a request body (`body_validator`: types, finite numbers, extra keys
    ignored), the missing-value rule is applied (`rows_by_value`) and `model` predicts the rows
    (a model that reads engineered features joins them itself, as the served one does). A row
    the service would answer with a 422 is a `DataError` naming the row and the column.
    """
    from pydantic import ValidationError
    from pydantic_core import to_json

    from conveyor.stages.serving._schemas import body_validator

    validator = body_validator(config)
    size = config.serving.max_batch
    outputs: dict[str, list[Any]] = {}
    for start in range(0, len(rows), size):
        try:
            data = validator.validate_json(to_json({"rows": rows[start:start + size]}, inf_nan_mode="constants", serialize_unknown=True))
        except ValidationError as exc:
            raise DataError(_row_error(exc, start)) from None
        batch = rows_by_value(model, data["rows"])
        flags = model.screen(batch)  # as the service does: what training never saw is answered as missing
        known = [{**row, **dict.fromkeys(flag)} if flag else row for row, flag in zip(batch, flags, strict=True)]
        for name, values in model.predict_records(known, cleaned=True).items():
            outputs.setdefault(name, []).extend(values)
        outputs.setdefault("warnings", []).extend(flag or None for flag in flags)
    return outputs


def _row_error(exc: Any, offset: int) -> str:
    """The first validation error as one line: which row, which column, what is wrong."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    loc = list(error["loc"])
    if loc[:2] == ["rows", "rows"]:  # the union's tag, then the field
        loc = loc[2:]
    where = f"row {int(loc[0]) + offset}" if loc and isinstance(loc[0], int) else "the rows"
    if len(loc) > 1:
        where += f", column {loc[1]!r}"
    more = f" ({len(errors) - 1} more error{'' if len(errors) == 2 else 's'})" if len(errors) > 1 else ""
    missing = sorted({str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"]})
    fix = (f"give every feature column ({len(missing)} missing: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
           "; null for an unknown value)" if missing else "give the feature columns the types conveyor.yaml declares "
           "(schema.columns)")
    return f"{where}: {error['msg']}{more}; `conveyor serve` would answer this with a 422: {fix}"
