"""An `integer` feature in POST /predict, over real HTTP (uvicorn on 127.0.0.1) with a real LightGBM
champion: a whole number written like a float (`3.0`) is the integer, as `prepare` reads it; a
fractional one (`3.5`), or a float from 2^53 on, is a 422 naming the row and the column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from conveyor.core.config import Config
from conveyor.runner._serve import ChampionModel
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app
from conveyor.stages.training import Champion
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import make_lightgbm
from conveyor.stages.training._model import ConveyorModel
from tests.unit.test_serving_app import TinyStore
from tests.unit.test_serving_swap import running  # noqa: F401  # the fixture: uvicorn in a thread

FRACTIONAL = "Input should be a valid integer, got a number with a fractional part"
TOO_LARGE = "Input should be a valid integer, got a number too large to be an exact integer"
ROW = {"temp": 0.5, "hour": 8, "season": 2}


def _config() -> Config:
    return Config.model_validate({
        "name": "integers",
        "source": {"path": "integers.csv"},
        "schema": {
            "target": "y",
            "task": "regression",
            "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "ingest_time"},
            "columns": {
                "temp": {"type": "float", "role": "numeric"},
                "hour": {"type": "integer", "role": "numeric"},
                "season": {"type": "integer", "role": "categorical"},
                "y": {"type": "float", "role": "numeric"},
            },
        },
        "serving": {"max_batch": 50},
    })


def _champion() -> ChampionModel:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"temp": rng.uniform(0, 1, 600), "hour": rng.integers(0, 24, 600),
                          "season": rng.integers(1, 5, 600)})
    y = 10 * frame["temp"] + np.sin(frame["hour"] / 4) * 5 + frame["season"] + rng.normal(0, 0.1, 600)
    encoder = FeatureEncoder(["temp", "hour"], ["season"]).fit(frame)
    estimator = make_lightgbm("regression", {"n_estimators": 40}, seed=1, threads=1)
    estimator.fit(encoder.transform(frame), y.to_numpy(), categorical_feature=encoder.categorical_indices)
    model = ConveyorModel(encoder, estimator, "regression")
    model.set_threads(1)
    return ChampionModel(Champion("integers", "1", "run-1", model, None))


@pytest.fixture
def url(tmp_path: Path, running: Any) -> Iterator[str]:  # noqa: F811  # the imported fixture
    app = create_app(_config(), ServiceParts(_champion(), TinyStore(), PredictionLog(tmp_path / "predictions")))
    yield running(app)


def _post(url: str, rows: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{url}/predict", content=json.dumps({"rows": rows}), timeout=30,
                      headers={"content-type": "application/json"})


def _logged(tmp_path: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (tmp_path / "predictions").glob("*.jsonl"))


@pytest.mark.parametrize(("column", "value", "message"), [
    ("hour", 3.5, FRACTIONAL), ("hour", -0.25, FRACTIONAL), ("season", 2.5, FRACTIONAL),
    ("hour", 2.0**53, TOO_LARGE), ("season", -1e300, TOO_LARGE),
])
def test_a_float_that_is_not_an_exact_integer_is_a_422_naming_row_and_column(
    url: str, tmp_path: Path, column: str, value: float, message: str,
) -> None:
    single = _post(url, [{**ROW, column: value}])
    assert single.status_code == 422, single.text
    assert single.json()["detail"] == [{"type": "int_from_float", "loc": ["body", "rows", 0, column], "msg": message}]
    batch = _post(url, [ROW, {**ROW, column: 4.0}, {**ROW, column: None}, {**ROW, column: value}, ROW])
    assert batch.status_code == 422, batch.text
    assert batch.json()["detail"] == [{"type": "int_from_float", "loc": ["body", "rows", 3, column], "msg": message}]
    assert _logged(tmp_path) == 0  # nothing predicted, nothing logged


def test_a_fraction_beside_other_errors_is_named_with_them(url: str) -> None:
    answer = _post(url, [{**ROW, "temp": "warm"}, {**ROW, "hour": 7.5, "season": 1.5}])
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"type": "float_type", "loc": ["body", "rows", 0, "temp"], "msg": "Input should be a valid number"},
        {"type": "int_from_float", "loc": ["body", "rows", 1, "hour"], "msg": FRACTIONAL},
        {"type": "int_from_float", "loc": ["body", "rows", 1, "season"], "msg": FRACTIONAL},
    ]


def test_a_whole_float_is_the_integer(url: str, tmp_path: Path) -> None:
    rows = [{**ROW, "hour": h, "season": s} for h in (0, 7, 23) for s in (1, 3, None)]
    floats = [{**r, "hour": float(r["hour"]), "season": None if r["season"] is None else float(r["season"])}
              for r in rows]
    as_ints, as_floats = _post(url, rows), _post(url, floats)
    assert as_ints.status_code == as_floats.status_code == 200, as_floats.text
    predicted = [p["prediction"] for p in as_ints.json()["predictions"]]
    assert len(set(predicted)) > 3  # the hour and the season move the prediction
    assert [p["prediction"] for p in as_floats.json()["predictions"]] == predicted
    one = _post(url, [{**ROW, "hour": 7.0, "season": 3.0}])
    assert one.status_code == 200 and one.json()["predictions"][0]["prediction"] == predicted[4]
    # an int from 2^53 beside a whole float: read by the validator, as accepted as either alone
    big = _post(url, [{**ROW, "season": 2**60}, {**ROW, "season": 3.0}])
    assert big.status_code == 200, big.text
    logged = [json.loads(line) for p in sorted((tmp_path / "predictions").glob("*.jsonl"))
              for line in p.read_text().splitlines()]
    assert [r["inputs"]["season"] for r in logged[-2:]] == [2**60, 3]  # the level 3, as an integer
