"""The columnar request path: the body read by column accepts exactly what the validator accepts,
the champion predicts columns as it predicts rows, and the log writes a batch of columns as it
writes records."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from conveyor.core.cleaning import MissingValues
from conveyor.core.config import Config
from conveyor.core.records import PredictionBatch, PredictionRecord
from conveyor.stages.monitoring._log import PredictionLog, _line
from conveyor.stages.serving._body import RowColumns
from conveyor.stages.serving._schemas import body_validator
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import make_lightgbm
from conveyor.stages.training._model import ConveyorModel


def config(max_batch: int = 5) -> Config:
    return Config.model_validate({
        "name": "body",
        "source": {"path": "body.csv"},
        "schema": {
            "target": "y",
            "task": "regression",
            "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "ingest_time"},
            "columns": {
                "temp": {"type": "float", "role": "numeric"},
                "count": {"type": "integer", "role": "numeric"},
                "season": {"type": "integer", "role": "categorical"},
                "weather": {"type": "string", "role": "categorical"},
                "open": {"type": "boolean", "role": "categorical"},
                "y": {"type": "float", "role": "numeric"},
            },
        },
        "serving": {"max_batch": max_batch},
    })


ROW = {"temp": 1.5, "count": 3, "season": 2, "weather": "sun", "open": True}

VALID = {
    "plain": {"rows": [ROW]},
    "integers in number columns": {"rows": [{**ROW, "temp": 2, "count": 4}, ROW]},
    "nulls": {"rows": [{"temp": None, "count": None, "season": None, "weather": None, "open": None}, ROW]},
    "extra row keys": {"rows": [{**ROW, "note": "ignored", "nested": {"a": [1]}}]},
    "the largest integers": {"rows": [{**ROW, "season": 2**63 - 1}, {**ROW, "season": -(2**63)}]},
    "whole floats in integer columns": {"rows": [
        {**ROW, "count": 4.0, "season": 2.0}, {**ROW, "count": None, "season": None},
        {**ROW, "count": -(2.0**53 - 1), "season": 2.0**53 - 1},
    ]},
    "a huge integer as a number": {"rows": [{**ROW, "temp": 2**64 - 1}]},
    "the limit": {"rows": [ROW] * 5},
}

INVALID = {
    "a bool as a number": {"rows": [{**ROW, "temp": True}]},
    "a bool as an integer": {"rows": [{**ROW, "season": False}]},
    "a fraction as an integer": {"rows": [{**ROW, "season": 2.0}, {**ROW, "season": 2.5}]},
    "a fraction in an integer number column": {"rows": [{**ROW, "count": 4.0}, {**ROW, "count": 3.5}]},
    "a whole float from 2^53 as an integer": {"rows": [{**ROW, "season": 2.0**53}]},
    "a whole float from 2^53 in an integer number column": {"rows": [{**ROW, "count": -(2.0**53)}]},
    "an integer as a string": {"rows": [{**ROW, "weather": 1}]},
    "an integer as a bool": {"rows": [{**ROW, "open": 1}]},
    "a string as a number": {"rows": [{**ROW, "temp": "1.5"}]},
    "an integer over 64 bits": {"rows": [{**ROW, "season": 2**63}]},
    "a missing feature": {"rows": [{k: v for k, v in ROW.items() if k != "temp"}]},
    "no rows": {"rows": []},
    "over the limit": {"rows": [ROW] * 6},
    "a row that is not an object": {"rows": [ROW, [1, 2]]},
    "rows and entities": {"rows": [ROW], "entities": [1]},
    "an extra key": {"rows": [ROW], "more": 1},
    "entities": {"entities": [1, 2]},
    "a list": [ROW],
}


def _validated_columns(body: bytes) -> dict[str, list[Any]]:
    rows = body_validator(config()).validate_json(body)["rows"]
    return {name: [row[name] for row in rows] for name in ROW}


@pytest.mark.parametrize("case", list(VALID))
def test_a_valid_body_reads_into_the_validators_values_by_column(case: str) -> None:
    body = json.dumps(VALID[case]).encode()
    found = RowColumns(config())(body)
    assert found is not None
    columns, count = found
    expected = _validated_columns(body)
    assert count == len(VALID[case]["rows"]) and list(columns) == list(expected)
    for name, values in expected.items():  # the same values of the same types (3 and 3.0 are not alike here)
        assert [(type(v), v) for v in columns[name]] == [(type(v), v) for v in values], name


@pytest.mark.parametrize("case", list(INVALID))
def test_anything_else_is_left_to_the_validator(case: str) -> None:
    body = json.dumps(INVALID[case]).encode()
    assert RowColumns(config())(body) is None
    if case != "entities":
        with pytest.raises(ValidationError):
            body_validator(config()).validate_json(body)


@pytest.mark.parametrize(("column", "literal"), [
    ("temp", b"NaN"), ("temp", b"Infinity"), ("temp", b"1e999"), ("season", b"18446744073709551616"),
])
def test_numbers_out_of_reach_are_left_to_the_validator(column: str, literal: bytes) -> None:
    row = json.dumps({**ROW, column: "X"}).encode().replace(b'"X"', literal)
    body = b'{"rows": [' + row + b"]}"
    assert RowColumns(config())(body) is None
    with pytest.raises(ValidationError):
        body_validator(config()).validate_json(body)


def test_an_integer_over_64_bits_is_a_number_as_validated() -> None:
    body = json.dumps({"rows": [{**ROW, "temp": 2**64}]}).encode()
    found = RowColumns(config())(body)
    assert found is not None and found[0]["temp"] == _validated_columns(body)["temp"] == [float(2**64)]


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_champion_predicts_columns_as_it_predicts_rows(task: str) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=300), "w": rng.normal(size=300), "c": rng.choice(["a", "b", "c"], 300)})
    encoder = FeatureEncoder(["x", "w"], ["c"], MissingValues({"w": [0], "c": ["-"]})).fit(frame)
    signal = frame["x"].to_numpy() + (frame["c"] == "a").to_numpy()
    target = signal if task == "regression" else (signal > np.median(signal)).astype(int)
    estimator = make_lightgbm(task, {"n_estimators": 20}, seed=1, threads=1)
    estimator.fit(encoder.transform(frame), target, categorical_feature=encoder.categorical_indices)
    model = ConveyorModel(encoder, estimator, task, None if task == "regression" else [0, 1])
    rows: list[dict[str, Any]] = frame.head(40).to_dict("records")  # type: ignore[assignment]
    rows[1]["w"] = 0.0  # means missing
    rows[2]["c"] = "-"  # means missing
    rows[3]["c"] = "never seen"  # unseen: answered as missing, flagged
    rows[4]["x"] = 1e6  # far beyond the training range: answered as missing, flagged
    rows[5]["x"] = None

    cleaned = [encoder.clean(row) for row in rows]
    flags = encoder.screen(cleaned)
    known = [{**row, **dict.fromkeys(flag)} for row, flag in zip(cleaned, flags, strict=True)]
    by_row = model.predict_records(known, cleaned=True)

    columns = {name: [row[name] for row in rows] for name in encoder.columns}
    outputs, found, inputs = model.predict_columns(columns, len(rows))
    assert outputs == by_row
    assert found == {i: flag for i, flag in enumerate(flags) if flag}
    assert found == {3: {"c": "unseen category"}, 4: {"x": "above the training range"}}
    assert inputs == {name: [row[name] for row in cleaned] for name in encoder.columns}
    assert inputs["w"][1] is None and inputs["c"][2] is None and columns["w"][1] == 0.0  # the request is not changed


def _batch(predictions: list[Any], **more: Any) -> PredictionBatch:
    return PredictionBatch(
        request_ids=[os.urandom(16).hex() for _ in predictions], timestamp=datetime.now(UTC), model="m",
        model_version="2", sources=["rows"] * len(predictions),
        inputs=more.pop("inputs", {"a": [1.5, None, 3.0][:len(predictions)], "b": ["x", "},{\"request_id\":\"", None][:len(predictions)]}),
        predictions=predictions, **more,
    )


@pytest.mark.parametrize("shape", ["rows", "classification", "entities and warnings"])
def test_a_batch_is_logged_as_its_records_are(tmp_path: Path, shape: str) -> None:
    more: dict[str, Any] = {}
    if shape == "classification":
        more = {"predictions": ["yes", "no", "yes"], "probabilities": [0.9, 0.2, 0.6]}
    elif shape == "entities and warnings":
        more = {"entities": [7, None, "k"], "warnings": {2: {"b": "unseen category"}}}
    batch = _batch(more.pop("predictions", [1.0, 2.5, -3.0]), **more)
    log = PredictionLog(tmp_path)
    log.append(batch)
    records = list(batch)
    assert [r.to_dict() for r in log.records()] == [r.to_dict() for r in records]
    lines = (tmp_path / log.segment().name).read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(_line(r, {})) for r in records]
    assert list(json.loads(lines[0])) == list(records[0].to_dict())  # the keys in the record's order
    assert batch[-1] == records[-1] and batch[1:] == records[1:]


@pytest.mark.parametrize("where", ["prediction", "input", "probability"])
def test_a_batch_with_nan_or_infinity_is_not_logged(tmp_path: Path, where: str) -> None:
    log = PredictionLog(tmp_path)
    bad = float("nan") if where != "input" else float("inf")
    batch = {
        "prediction": _batch([1.0, bad]),
        "input": _batch([1.0, 2.0], inputs={"a": [1.0, bad], "b": [None, 2]}),
        "probability": _batch(["a", "b"], probabilities=[0.5, bad]),
    }[where]
    with pytest.raises(ValueError, match="not JSON compliant"):
        log.append(batch)
    assert log.records() == []
    log.append(_batch([1.0, 2.0], inputs={"a": [None, None], "b": [float("1e300"), 2]}))  # None is not NaN
    assert [r.inputs for r in log.records()] == [{"a": None, "b": 1e300}, {"a": None, "b": 2}]


def test_records_of_a_batch_are_whole_records() -> None:
    batch = _batch([1.0, 2.0], entities=[None, 4], warnings={0: {"a": "above the training range"}})
    first, second = batch
    assert isinstance(first, PredictionRecord) and first.inputs == {"a": 1.5, "b": "x"}
    assert first.warnings == {"a": "above the training range"} and first.entity is None
    assert second.warnings is None and second.entity == 4 and second.inputs == {"a": None, "b": "},{\"request_id\":\""}
    with pytest.raises(IndexError):
        batch[2]


def test_a_python_caller_missing_columns_is_told_which_not_to_fix_types() -> None:
    """`Project.predict` turns the validator's errors into one line: missing columns are named as missing."""
    from pydantic import BaseModel, ValidationError

    from conveyor.stages.serving._predict import _row_error

    class Row(BaseModel):
        a: float
        b: float
        c: str

    try:
        Row.model_validate({"a": 1.0})
    except ValidationError as exc:
        said = _row_error(exc, 0)
    assert "(1 more error)" in said and "give every feature column (2 missing: b, c" in said
    try:
        Row.model_validate({"a": "x", "b": 1.0, "c": "k"})
    except ValidationError as exc:
        said = _row_error(exc, 3)
    assert "valid number" in said
    assert "types conveyor.yaml declares" in said and "missing" not in said
