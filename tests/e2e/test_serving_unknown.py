"""Serving says what it did not know, over real HTTP (uvicorn on 127.0.0.1).

A real `FeatureEncoder` and a real scikit-learn model (which treats NaN as missing) behind the
runner's `ChampionModel`: an unseen category and a number far outside the training range are
answered as missing values are, flagged per row in the answer, counted in /metrics and written
to the prediction log. No MLflow: the champion is the fitted model object itself.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from conveyor.runner._serve import ChampionModel
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._model import ConveyorModel
from tests.e2e.test_serving_log_full import uvicorn_server
from tests.unit.test_serving_app import TinyStore, tiny_config


def _champion() -> ChampionModel:
    rng = random.Random(5)
    frame = pd.DataFrame({
        "temp": [rng.random() for _ in range(400)],  # 0..1
        "wind": [rng.uniform(1, 30) for _ in range(400)],
        "season": [rng.choice([1, 2, 3, 4]) for _ in range(400)],
        "weather": [rng.choice(["sun", "rain", "fog"]) for _ in range(400)],
    })
    target = 40 * frame["temp"] + 5 * frame["season"] + frame["wind"] / 3
    encoder = FeatureEncoder(["temp", "wind"], ["season", "weather"]).fit(frame)
    estimator = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(encoder.transform(frame), target)
    model = ConveyorModel(encoder, estimator, "regression")
    return ChampionModel(SimpleNamespace(name="tiny", version="3", run_id="run-3", model=model))  # type: ignore[arg-type]


def test_unseen_and_out_of_range_values_are_answered_as_missing_and_flagged(tmp_path: Path) -> None:
    champion = _champion()
    high = champion._model.encoder.ranges_["temp"][1]
    log = PredictionLog(tmp_path / "predictions")
    app = create_app(tiny_config(), ServiceParts(champion, TinyStore(), log))
    base = {"temp": 0.5, "wind": 10.0, "season": 2, "weather": "sun"}
    rows = [
        base,
        {**base, "season": 7},  # never seen in training
        {**base, "season": None},  # missing: the path season 7 must take
        {**base, "temp": 5.0},  # far above the training range
        {**base, "temp": None},
        {**base, "temp": high + 0.05},  # above the maximum, within the margin: the model's edge, no warning
        {**base, "weather": "snow", "temp": -3.0},
    ]
    with uvicorn_server(app) as url:
        answer = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30)
        metrics = httpx.get(f"{url}/metrics").text
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p.get("warnings") for p in predictions] == [
        None, {"season": "unseen category"}, None, {"temp": "above the training range"}, None, None,
        {"temp": "below the training range", "weather": "unseen category"},
    ]
    value = [p["prediction"] for p in predictions]
    assert value[1] == value[2] and value[1] != value[0]  # season 7 answered as a missing season
    assert value[3] == value[4]  # temp 5.0 answered as a missing temp
    assert 'conveyor_unknown_values_total{feature="season",kind="unseen category"} 1.0' in metrics
    assert 'conveyor_unknown_values_total{feature="temp",kind="above the training range"} 1.0' in metrics
    assert 'conveyor_unknown_values_total{feature="weather",kind="unseen category"} 1.0' in metrics
    records = log.records()
    assert [r.warnings for r in records] == [p.get("warnings") for p in predictions]  # in the log too
    assert records[1].inputs["season"] == 7 and records[3].inputs["temp"] == 5.0  # the value as it came


def test_a_model_pickled_before_ranges_were_recorded_checks_categories_only() -> None:
    encoder = FeatureEncoder(["temp"], ["season"]).fit(pd.DataFrame({"temp": [0.0, 1.0], "season": [1, 2]}))
    del encoder.ranges_
    old = pickle.loads(pickle.dumps(encoder))
    assert old.screen([{"temp": 99.0, "season": 1}, {"temp": 0.5, "season": 3}]) == [{}, {"season": "unseen category"}]
    assert encoder.screen([{"temp": 1.0, "season": True}]) == [{"season": "unseen category"}]  # True is not level 1
