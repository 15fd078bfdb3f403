"""The final LightGBM fit's rounds (early stopping on an inner split) and what the run table says of a search."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from conveyor.stages.training._candidates import Candidate, _stopped_rounds
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import LIGHTGBM_MAX_ROUNDS, make_lightgbm
from conveyor.stages.training._train import TrainResult


class _Recorder:
    """Stands in for a LightGBM model: records what it is fitted on, stops at a given round."""

    def __init__(self, best: int) -> None:
        self.best_iteration_ = best
        self.fitted: list[np.ndarray] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Recorder:
        self.fitted = [x, y]
        return self


def _data(rows: int, how: str, classes: list[Any] | None = None, y: np.ndarray | None = None) -> Any:
    x = np.arange(rows, dtype=float).reshape(-1, 1)
    return SimpleNamespace(
        x_train=x, y_train=np.arange(rows, dtype=float) if y is None else y, how=how, classes=classes,
        config=SimpleNamespace(training=SimpleNamespace(seed=3)), encoder=FeatureEncoder(["x"], []),
    )


def test_a_time_split_stops_early_on_its_latest_rows_and_scales_the_rounds_to_the_whole_split() -> None:
    made: list[_Recorder] = []

    def make(params: dict[str, Any]) -> _Recorder:
        assert params["n_estimators"] == LIGHTGBM_MAX_ROUNDS and params["learning_rate"] == 0.1
        made.append(_Recorder(best=170))
        return made[-1]

    rounds = _stopped_rounds(make, {"learning_rate": 0.1}, _data(1000, "time"))
    fitted = made[0].fitted[0].ravel()
    assert fitted.tolist() == list(range(850))  # the earliest 85 %: the latest 15 % is what stopping watched
    assert rounds == 200  # 170 rounds on 850 rows, scaled to 1,000


def test_a_random_split_holds_out_a_stratified_seeded_share() -> None:
    y = np.array([0] * 900 + [1] * 100)
    made: list[_Recorder] = []

    def make(params: dict[str, Any]) -> _Recorder:
        made.append(_Recorder(best=0))  # never stopped early: the most rounds
        return made[-1]

    data = _data(1000, "random", classes=[0, 1], y=y)
    assert _stopped_rounds(make, {}, data) == LIGHTGBM_MAX_ROUNDS
    _stopped_rounds(make, {}, data)
    first, second = (m.fitted for m in made)
    assert len(first[1]) == 850 and int(first[1].sum()) == 85  # stratified: a tenth of each side is class 1
    assert first[0].ravel().tolist() == second[0].ravel().tolist()  # seeded: the same rows every time
    assert first[0].ravel().tolist() != list(range(850))  # random, not the first rows


def test_real_lightgbm_rounds_stop_well_before_the_cap_on_a_simple_signal() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 1))
    y = 3 * x[:, 0] + rng.normal(0, 0.1, 800)
    data = _data(800, "random", y=y)
    data.x_train = x
    rounds = _stopped_rounds(lambda p: make_lightgbm("regression", {**p, "learning_rate": 0.3}, seed=1, threads=1), {},
                             data)
    assert 1 <= rounds < LIGHTGBM_MAX_ROUNDS // 2


def _result(stopped_by: str, trials: int, gain: float | None) -> TrainResult:
    lgbm = Candidate(run_id="r", model_id="m", metrics={"r2": 0.92}, fit_seconds=1.5, search_seconds=9.25,
                     trials=trials, pruned=1, stopped_by=stopped_by, cv_gain=gain)
    return TrainResult(experiment_id="1", primary_metric="r2", split="time", train_rows=100, test_rows=20,
                       candidates={"lightgbm": lgbm}, best="lightgbm")


def test_the_run_table_says_how_long_the_search_took_what_ended_it_and_what_it_bought() -> None:
    line = _result("trials", 6, 0.0042).summary()
    assert "lightgbm 0.9200 (1.5s + search 9.2s: 6 trials, 1 pruned, ended by trials, CV +0.0042 over untuned)" in line
    assert "ended by budget" in _result("budget", 3, -0.0).summary()
