"""The averaged LightGBM (the search's choice with the untuned model): what it predicts and serves."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import fit, make_lightgbm
from conveyor.stages.training._model import Averaged, ConveyorModel


def _frame(rows: int = 700) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows),
                          "c": [f"L{i}" for i in rng.integers(0, 6, rows)]})
    y = np.exp(1 + 0.5 * frame["x"].to_numpy() + 0.3 * np.sin(3 * frame["z"].to_numpy()) + rng.normal(0, 0.2, rows))
    return frame, y


def test_an_averaged_regressor_serves_the_mean_of_its_members_on_the_target_scale() -> None:
    frame, y = _frame()
    encoder = FeatureEncoder(["x", "z"], ["c"]).fit(frame)
    x = encoder.transform(frame)
    members = [make_lightgbm("regression", {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7}, seed=1, threads=2),
               make_lightgbm("regression", {"n_estimators": 30, "target": "log"}, seed=2, threads=2)]
    for member in members:
        fit(member, x[:500], y[:500], encoder)
    first, second = (np.asarray(m.predict(x[500:])) for m in members)
    assert not np.allclose(first, second)  # two different models, else the mean proves nothing
    averaged = Averaged(members)
    assert np.allclose(averaged.predict(x[500:]), (first + second) / 2)
    served = ConveyorModel(encoder, averaged, "regression")
    served.set_threads(1)
    assert [m.get_params()["n_jobs"] for m in members] == [1, 1]  # serving's one thread reaches every member
    rows = frame.iloc[500:].to_dict("records")
    predicted = served.predict_records(rows)["prediction"]
    assert np.allclose(predicted, (first + second) / 2, rtol=1e-12, atol=0)  # each booster direct, the same numbers
    assert served.predict_frame(frame.iloc[500:])["prediction"] == predicted
    assert len(served.__dict__["_predictor_"]) == 2  # one C-API predictor per member's booster, each made once
    assert pickle.loads(pickle.dumps(served)).predict_records(rows) == served.predict_records(rows)
    shares = averaged.feature_importances_
    assert shares is not None and shares.sum() == pytest.approx(1.0) and len(shares) == x.shape[1]


def test_an_averaged_classifier_serves_the_mean_probabilities_and_their_label() -> None:
    frame, y = _frame()
    labels = np.where(y > np.median(y), "high", "low")
    encoder = FeatureEncoder(["x", "z"], ["c"]).fit(frame)
    x = encoder.transform(frame)
    target = (labels == "low").astype(int)  # class index: ["high", "low"]
    members = [make_lightgbm("classification", {"n_estimators": 40, "num_leaves": 4}, seed=1, threads=1),
               make_lightgbm("classification", {"n_estimators": 80, "learning_rate": 0.2}, seed=3, threads=1)]
    for member in members:
        fit(member, x[:500], target[:500], encoder)
    mean = (members[0].predict_proba(x[500:]) + members[1].predict_proba(x[500:])) / 2
    averaged = Averaged(members)
    assert np.allclose(averaged.predict_proba(x[500:]), mean)
    assert averaged.classes_.tolist() == [0, 1]
    served = ConveyorModel(encoder, averaged, "classification", ["high", "low"])
    out = served.predict_frame(frame.iloc[500:])
    assert np.allclose(out["probability"], mean[:, 1])
    assert out["prediction"] == ["low" if p > 0.5 else "high" for p in mean[:, 1]]


def test_averaging_two_regressors_never_has_a_larger_squared_error_than_the_two_have_on_average() -> None:
    frame, y = _frame(1500)
    encoder = FeatureEncoder(["x", "z"], ["c"]).fit(frame)
    x = encoder.transform(frame)
    members = [make_lightgbm("regression", {"n_estimators": 300, "learning_rate": 0.1, "num_leaves": 63,
                                            "min_child_samples": 5}, seed=1, threads=1),
               make_lightgbm("regression", {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 4}, seed=1,
                             threads=1)]
    for member in members:
        fit(member, x[:1000], y[:1000], encoder)
    errors = [float(np.mean((m.predict(x[1000:]) - y[1000:]) ** 2)) for m in members]
    averaged = float(np.mean((Averaged(members).predict(x[1000:]) - y[1000:]) ** 2))
    assert averaged <= sum(errors) / 2  # convexity of the squared error: the hedge costs at most a coin flip
    assert averaged < min(errors) + 0.5 * abs(errors[0] - errors[1])


def test_an_empty_average_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Averaged([])
