"""Candidates that fit the data: a log target for a skewed one, target encoding for many levels."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import MANY_LEVELS, LogTarget, fit, make_lightgbm, make_linear, skewed_target
from conveyor.stages.training._model import ConveyorModel


def _frame(rows: int = 600, levels: int = 50) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "c": [f"L{i}" for i in rng.integers(0, levels, rows)]})
    effect = rng.normal(size=levels)
    log_y = 11 + 0.4 * frame["x"].to_numpy() + effect[frame["c"].str[1:].astype(int).to_numpy()] + rng.normal(0, 0.1, rows)
    return frame, np.exp(log_y)


def test_a_long_right_tail_is_skewed_and_a_symmetric_or_signed_target_is_not() -> None:
    rng = np.random.default_rng(0)
    assert skewed_target(np.exp(rng.normal(size=2000)))
    assert not skewed_target(rng.normal(10, 1, size=2000))
    assert not skewed_target(np.exp(rng.normal(size=2000)) - 5)  # negative values: no log
    assert not skewed_target(np.ones(10))


def test_a_log_target_model_is_scored_and_served_on_the_original_scale() -> None:
    frame, y = _frame()
    encoder = FeatureEncoder(["x"], ["c"]).fit(frame)
    x = encoder.transform(frame)
    model = make_lightgbm("regression", {"n_estimators": 40, "target": "log"}, seed=1, threads=1)
    assert isinstance(model, LogTarget)
    fit(model, x[:500], y[:500], encoder, valid=(x[500:], y[500:]))
    predicted = model.predict(x[500:])
    assert 0.5 * y.min() < predicted.min() and predicted.max() < 2 * y.max()  # prices, not log prices
    assert model.best_iteration_ is not None
    served = ConveyorModel(encoder, model, "regression")
    served.set_threads(1)
    rows = frame.iloc[500:].to_dict("records")
    assert served.predict_records(rows)["prediction"] == [float(v) for v in predicted]  # one booster call, the same numbers
    assert pickle.loads(pickle.dumps(served)).predict_records(rows) == served.predict_records(rows)


def test_the_linear_baseline_target_encodes_many_levels_and_one_hot_encodes_few() -> None:
    frame, y = _frame(levels=MANY_LEVELS + 20)
    frame["few"] = np.where(frame["x"] > 0, "up", "down")
    encoder = FeatureEncoder(["x"], ["c", "few"]).fit(frame)
    x = encoder.transform(frame)
    model = make_linear("regression", encoder, {"alpha": 1.0, "target": "log"}, seed=0)
    fit(model, x[:500], y[:500], encoder)
    prep = model.regressor.steps[0][1]
    assert {name: cols for name, _, cols in prep.transformers} == {"numeric": [0], "categorical": [2], "many_levels": [1]}
    one_hot = make_linear("regression", encoder, {"alpha": 1.0}, seed=0)
    fit(one_hot, x[:500], np.log(y[:500]), encoder)
    error = np.abs(np.log(model.predict(x[500:])) - np.log(y[500:])).mean()
    assert error < 0.2  # the level effects learned through the target encoding (noise 0.1 on the log scale)
