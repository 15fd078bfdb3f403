"""A time-ordered fold may train on fewer classes than the data has (a class that appears later)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import early_stopping_metric, fit, make_lightgbm
from conveyor.stages.training._search import model_output


def test_a_fold_missing_a_class_of_a_multiclass_target_still_fits_and_scores() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=90)})
    y = np.repeat([0, 1, 2], 30)  # sorted by time: class 2 only in the last third
    encoder = FeatureEncoder(["x"], []).fit(frame)
    x = encoder.transform(frame)
    for train_end in (30, 60):  # one class, then two classes, of three
        model = make_lightgbm("classification", {"n_estimators": 5, "metric": early_stopping_metric("accuracy", 3)},
                              seed=1, threads=1)
        fit(model, x[:train_end], y[:train_end], encoder, valid=(x[train_end:], y[train_end:]))
        proba = model_output(model, "classification", x[train_end:], 3)
        assert proba.shape == (90 - train_end, 3)
        assert np.allclose(proba.sum(axis=1), 1.0)
        assert (proba[:, int(y[:train_end].max()) + 1:] == 0).all()  # classes the fold never saw: probability 0


def test_a_binary_early_stopping_metric_on_a_one_class_fold_still_fits() -> None:
    frame = pd.DataFrame({"x": np.arange(40, dtype=float)})
    y = np.array([0] * 20 + [1] * 20)
    encoder = FeatureEncoder(["x"], []).fit(frame)
    x = encoder.transform(frame)
    model = make_lightgbm("classification", {"n_estimators": 5, "metric": early_stopping_metric("roc_auc", 2)},
                          seed=1, threads=1)
    fit(model, x[:20], y[:20], encoder, valid=(x[20:], y[20:]))
    assert model_output(model, "classification", x[20:], 2).shape == (20, 2)
