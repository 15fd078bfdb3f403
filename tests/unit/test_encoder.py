from __future__ import annotations

import math

import numpy as np
import pandas as pd

from conveyor.core.cleaning import MissingValues, level
from conveyor.stages.training._encoder import FeatureEncoder


def test_levels_are_the_same_whatever_the_json_type() -> None:
    assert level(1) == level(1.0) == level("1") == level(np.int64(1)) == "1"
    assert level(None) is None and level(float("nan")) is None
    assert level(True) == "true"


def test_transform_and_the_serving_path_agree() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": [1, 1, 2, None], "w": [0.0, 0.5, 0.0, 1.0]})
    encoder = FeatureEncoder(["x", "w"], ["c"], MissingValues({"w": [0]})).fit(train)
    assert encoder.codes_ == {"c": {"1": 0, "2": 1}}  # by frequency
    rows = [{"x": 3, "w": 0, "c": 2.0}, {"x": None, "w": 0.5, "c": 7}, {"x": 1.5, "w": 1, "c": None}]
    batch = encoder.transform(pd.DataFrame(rows))
    served = encoder.transform_records(rows)
    np.testing.assert_array_equal(np.isnan(batch), np.isnan(served))
    np.testing.assert_array_equal(np.nan_to_num(batch, nan=-9), np.nan_to_num(served, nan=-9))
    assert math.isnan(served[0, 1])  # 0 wind speed means missing, as in training
    assert served[0, 2] == 1.0  # 2.0 is the level "2"
    assert math.isnan(served[1, 2])  # a level unseen in training is missing
    assert encoder.clean({"w": 0, "x": 0}) == {"w": None, "x": 0}


def test_vectorised_fit_and_transform_match_the_per_value_rule_on_mixed_columns() -> None:
    """Distinct values are encoded once each; the codes must equal the per-row path's, whatever
    mix of types a column holds (1, 1.0, "1", numpy ints, bools, None, NaN) and with a missing rule
    on a categorical and a numeric column."""
    rng = np.random.default_rng(3)
    pool: list[object] = [1, 1.0, "1", np.int64(2), "2", 2.5, "a", "b", True, False, None, float("nan"), "-"]
    train = pd.DataFrame({
        "c": [pool[i] for i in rng.integers(0, len(pool), 500)],
        "k": pd.array(rng.integers(0, 5, 500), dtype="Int64"),
        "x": rng.normal(size=500),
    })
    train.loc[::7, "k"] = pd.NA
    train.loc[::11, "x"] = 0.0
    rule = MissingValues({"c": ["-", "b"], "x": [0]})
    encoder = FeatureEncoder(["x"], ["c", "k"], rule).fit(train)
    # the counts behind the codes: one per level, as the per-value definition gives
    expected: dict[str, int] = {}
    for value in train["c"].tolist():
        name = level(value)
        if name is not None:
            expected[name] = expected.get(name, 0) + 1
    ordered = sorted(expected.items(), key=lambda item: (-item[1], item[0]))
    assert encoder.codes_["c"] == {name: code for code, (name, _) in enumerate(ordered)}
    batch = encoder.transform(train)
    served = encoder.transform_records(train.astype(object).where(train.notna(), None).to_dict("records"))
    np.testing.assert_array_equal(np.nan_to_num(batch, nan=-9), np.nan_to_num(served, nan=-9))
    assert np.isnan(batch[train["x"].to_numpy() == 0.0, 0]).all()  # the rule on a numeric column
