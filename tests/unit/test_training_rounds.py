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

    rounds, capped = _stopped_rounds(make, {"learning_rate": 0.1}, _data(1000, "time"))
    fitted = made[0].fitted[0].ravel()
    assert fitted.tolist() == list(range(850))  # the earliest 85 %: the latest 15 % is what stopping watched
    assert rounds == 200 and not capped  # 170 rounds on 850 rows, scaled to 1,000


def test_a_random_split_holds_out_a_stratified_seeded_share() -> None:
    y = np.array([0] * 900 + [1] * 100)
    made: list[_Recorder] = []

    def make(params: dict[str, Any]) -> _Recorder:
        made.append(_Recorder(best=0))  # never stopped early: the most rounds
        return made[-1]

    data = _data(1000, "random", classes=[0, 1], y=y)
    assert _stopped_rounds(make, {}, data) == (LIGHTGBM_MAX_ROUNDS, False)
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
    rounds, capped = _stopped_rounds(
        lambda p: make_lightgbm("regression", {**p, "learning_rate": 0.3}, seed=1, threads=1), {}, data)
    assert 1 <= rounds < LIGHTGBM_MAX_ROUNDS // 2 and not capped


def test_a_stopping_fit_the_clock_ends_says_so_and_keeps_the_rounds_it_reached() -> None:
    import time

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    y = np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(0, 0.05, 4000)  # a slow learner at rate 0.005
    data = _data(4000, "random", y=y)
    data.x_train = x
    make = lambda p: make_lightgbm("regression", {**p, "learning_rate": 0.005}, seed=1, threads=1)  # noqa: E731
    free, capped = _stopped_rounds(make, {}, data)
    assert not capped and free > 200
    started = time.perf_counter()
    rounds, capped = _stopped_rounds(make, {}, data, stop_at=started)
    assert capped and rounds == round(1 * 4000 / 3400)  # one round on 85 % of the rows, scaled to the split


def _result(stopped_by: str, trials: int, gain: float | None) -> TrainResult:
    lgbm = Candidate(run_id="r", model_id="m", metrics={"r2": 0.92}, fit_seconds=1.5, search_seconds=9.25,
                     trials=trials, pruned=1, stopped_by=stopped_by, cv_gain=gain)
    return TrainResult(experiment_id="1", primary_metric="r2", split="time", train_rows=100, test_rows=20,
                       candidates={"lightgbm": lgbm}, best="lightgbm")


def test_the_run_table_says_how_long_the_search_took_what_ended_it_and_what_it_bought() -> None:
    line = _result("trials", 6, 0.0042).summary()
    assert "lightgbm 0.9200 (1.5s + search 9.2s: 6 trials, 1 pruned, ended by trials, CV +0.0042 over untuned)" in line
    assert "ended by budget" in _result("budget", 3, -0.0).summary()


def test_a_fit_given_a_deadline_already_past_stops_at_its_first_round() -> None:
    import time

    import pytest

    from conveyor.stages.training._estimators import OverBudget, fit

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    y = x[:, 0] + rng.normal(0, 0.1, 400)
    encoder = FeatureEncoder(["a", "b"], [])
    with pytest.raises(OverBudget, match="round 1:"):
        fit(make_lightgbm("regression", {"learning_rate": 0.1}, seed=1, threads=1), x, y, encoder,
            stop_at=time.perf_counter() - 1)
    done = fit(make_lightgbm("regression", {"learning_rate": 0.1, "n_estimators": 30}, seed=1, threads=1), x, y,
               encoder, stop_at=time.perf_counter() + 3600)
    assert done.booster_.current_iteration() == 30  # a deadline far off changes nothing


def test_the_search_reads_a_seeded_sample_of_a_large_training_split_in_its_order() -> None:
    from conveyor.stages.training._train import search_rows

    x = np.arange(5000, dtype=float).reshape(-1, 1)
    y = np.arange(5000, dtype=float) * 2
    same_x, same_y = search_rows(x, y, 5000, seed=3)
    assert same_x is x and same_y is y  # at or under the limit: every row, no copy
    sx, sy = search_rows(x, y, 1200, seed=3)
    assert len(sx) == len(sy) == 1200
    assert (np.diff(sx[:, 0]) > 0).all()  # in order: time-ordered folds stay in time order
    assert (sy == sx[:, 0] * 2).all()  # rows stay whole
    assert sx[:, 0].tolist() == search_rows(x, y, 1200, seed=3)[0][:, 0].tolist()  # seeded
    assert sx[:, 0].tolist() != search_rows(x, y, 1200, seed=4)[0][:, 0].tolist()
    assert sx[0, 0] < 100 and sx[-1, 0] > 4900  # spread over the whole split, not its head


def test_an_untuned_setting_outside_the_search_ranges_is_searched_around_without_a_warning() -> None:
    import warnings

    import optuna

    from conveyor.stages.training._estimators import lightgbm_space, untuned_lightgbm

    untuned = untuned_lightgbm({"learning_rate": 0.01, "num_leaves": 255, "min_child_samples": 5,
                                "subsample": 0.5, "colsample_bytree": 0.3})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(untuned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns of a fixed value out of its distribution's range
        study.optimize(lambda t: float(len(lightgbm_space(t, False, untuned=untuned))), n_trials=3)
    first = study.trials[0]
    assert first.params == untuned  # the first trial is exactly the configured model
    assert first.distributions["learning_rate"].low == 0.01 and first.distributions["num_leaves"].high == 255
    later = study.trials[1].distributions
    assert later["subsample"].low == 0.5 and later["colsample_bytree"].low == 0.3 and later["min_child_samples"].low == 5
    default = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    default.optimize(lambda t: float(len(lightgbm_space(t, False))), n_trials=1)
    assert default.trials[0].distributions["learning_rate"].low == 0.02  # without one: the usual ranges
