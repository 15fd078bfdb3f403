"""`BoosterPredictor`: LightGBM's C API called directly gives `Booster.predict`'s numbers, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from conveyor.stages.training._booster import BoosterPredictor, booster_predictor
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import make_lightgbm
from conveyor.stages.training._model import ConveyorModel


def _fitted(task: str, classes: int) -> tuple[ConveyorModel, np.ndarray]:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500), "c": rng.choice(["a", "b", "c"], 500)})
    encoder = FeatureEncoder(["x", "y"], ["c"]).fit(frame)
    matrix = encoder.transform(frame)
    signal = frame["x"].to_numpy() + (frame["c"] == "a").to_numpy()
    target = signal if task == "regression" else np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    estimator = make_lightgbm(task, {"n_estimators": 40}, seed=3, threads=1)
    estimator.fit(matrix, target, categorical_feature=encoder.categorical_indices)
    model = ConveyorModel(encoder, estimator, task, None if task == "regression" else list(range(classes)))
    model.set_threads(1)
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    matrix[::5, 0] = np.nan  # missing values take the trees' default branches
    matrix[::7, 2] = np.nan
    return model, matrix


@pytest.mark.parametrize(("task", "classes"), [("regression", 0), ("classification", 2), ("classification", 3)])
def test_the_predictor_gives_booster_predicts_numbers_for_one_row_and_for_a_batch(task: str, classes: int) -> None:
    model, matrix = _fitted(task, classes)
    booster = model._booster(model.estimator)
    predictor = booster_predictor(booster, 1)
    assert isinstance(predictor, BoosterPredictor)
    for rows in (matrix[:1], matrix[7:8], matrix[:2], matrix[:100], matrix):
        rows = np.ascontiguousarray(rows)
        assert predictor.accepts(rows)
        expected = booster.predict(rows, num_threads=1)
        got = predictor(rows)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)  # the same C functions: the same bits
    for row in range(30):  # one row at a time: the single-row fast path, its configuration reused
        one = np.ascontiguousarray(matrix[row:row + 1])
        assert np.array_equal(predictor(one), booster.predict(one, num_threads=1))


def test_the_predictor_leaves_what_it_does_not_take_to_booster_predict() -> None:
    model, matrix = _fitted("regression", 0)
    predictor = booster_predictor(model._booster(model.estimator), 1)
    assert predictor is not None
    assert not predictor.accepts(np.asfortranarray(matrix[:10]))
    assert not predictor.accepts(matrix[:10].astype(np.float32))
    assert not predictor.accepts(matrix[:10, :2].copy())  # a column short
    assert not predictor.accepts(matrix[:0])
    # the model still answers such input, by Booster.predict, with the same numbers
    assert np.array_equal(model._predict(matrix[:10].astype(np.float32)),
                          model._booster(model.estimator).predict(matrix[:10].astype(np.float32), num_threads=1))


def test_the_model_keeps_one_predictor_and_pickles_without_it() -> None:
    model, matrix = _fitted("classification", 3)
    first = model._predict_proba(np.ascontiguousarray(matrix[:1]))
    [predictor] = model.__dict__["_predictor_"].values()
    assert isinstance(predictor, BoosterPredictor)
    model._predict_proba(np.ascontiguousarray(matrix[:50]))
    assert list(model.__dict__["_predictor_"].values()) == [predictor]  # made once per booster
    again = pickle.loads(pickle.dumps(model))  # as MLflow logs it: no C handle in the pickle
    assert "_predictor_" not in again.__dict__
    assert np.array_equal(again._predict_proba(np.ascontiguousarray(matrix[:1])), first)
    model.set_threads(2)  # a new thread count: a new predictor
    assert "_predictor_" not in model.__dict__


def test_threads_sharing_one_predictor_get_each_rows_own_numbers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model, matrix = _fitted("classification", 3)
    booster = model._booster(model.estimator)
    predictor = booster_predictor(booster, 1)
    assert predictor is not None
    expected = booster.predict(matrix, num_threads=1)

    def one_by_one(start: int) -> list[tuple[int, np.ndarray]]:
        return [(i, predictor(np.ascontiguousarray(matrix[i:i + 1]))) for i in range(start, len(matrix), 4)]

    with ThreadPoolExecutor(4) as pool:  # the single-row configuration's buffers, shared by 4 threads
        for found in pool.map(one_by_one, range(4)):
            for i, values in found:
                assert np.array_equal(values[0], expected[i]), i
