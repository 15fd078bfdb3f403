"""Metric directions, the gate's comparison, and the thread plan."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conveyor.core.errors import TrainingError
from conveyor.stages.training._metrics import beats, classification_scores, gain, metric_for, regression_scores
from conveyor.stages.training._threads import _cgroup_limit, idle_cpus, plan_threads, solo_threads, usable_cpus


@pytest.mark.parametrize("metric", ["rmse", "mae", "rmsle", "log_loss"])
def test_lower_is_better_metrics_compare_the_right_way(metric: str) -> None:
    assert beats(metric, 1.0, 2.0)
    assert not beats(metric, 2.0, 1.0)
    assert not beats(metric, 1.0, 1.0)  # equal is not better
    assert not beats(metric, 1.9, 2.0, margin=0.2)  # better, but not by the margin
    assert beats(metric, 1.7, 2.0, margin=0.2)
    assert gain(metric, 1.0, 2.0) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ["r2", "roc_auc", "pr_auc", "f1", "accuracy"])
def test_higher_is_better_metrics_compare_the_right_way(metric: str) -> None:
    assert beats(metric, 0.9, 0.8)
    assert not beats(metric, 0.8, 0.9)
    assert not beats(metric, 0.85, 0.8, margin=0.1)


def test_metric_must_fit_the_task() -> None:
    assert metric_for(None, "regression", None).name == "r2"
    assert metric_for(None, "classification", 2).name == "roc_auc"
    assert metric_for(None, "classification", 3).name == "accuracy"
    assert metric_for("rmse", "regression", None).greater_is_better is False
    with pytest.raises(TrainingError, match="'rmse' is a regression metric; for classification use one of"):
        metric_for("rmse", "classification", 2)


def test_scores_of_perfect_and_trivial_predictions() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = regression_scores(truth, truth)
    assert perfect["r2"] == 1.0 and perfect["rmse"] == 0.0 and perfect["rmsle"] == 0.0
    assert "rmsle" not in regression_scores(np.array([-1.0, 2.0]), np.array([0.0, 1.0]))
    labels = np.array([0, 1, 1, 0])
    scores = classification_scores(labels, np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]))
    assert scores["roc_auc"] == 1.0 and scores["accuracy"] == 1.0 and scores["f1"] == 1.0 and scores["pr_auc"] == 1.0
    three = classification_scores(np.array([0, 1, 2]), np.eye(3) * 0.8 + 0.2 / 3)
    assert three["accuracy"] == 1.0 and three["log_loss"] < 0.3


def test_cgroup_quota_caps_the_cpus(tmp_path: Path) -> None:
    v2 = tmp_path / "cpu.max"
    v2.write_text("150000 100000\n")
    assert _cgroup_limit(v2, (tmp_path / "a", tmp_path / "b")) == 2
    v2.write_text("max 100000\n")
    assert _cgroup_limit(v2, (tmp_path / "a", tmp_path / "b")) is None
    quota, period = tmp_path / "quota", tmp_path / "period"
    quota.write_text("50000")
    period.write_text("100000")
    assert _cgroup_limit(tmp_path / "missing", (quota, period)) == 1
    assert 1 <= usable_cpus()


def test_parallel_folds_xor_parallel_threads() -> None:
    assert plan_threads(None, cpus=4) == plan_threads(1, cpus=4)
    auto = plan_threads(None, cpus=4)
    assert (auto.threads, auto.workers) == (1, 4)
    many = plan_threads(3, cpus=4)
    assert (many.threads, many.workers) == (3, 1)
    capped = plan_threads(8, cpus=2)
    assert (capped.threads, capped.workers) == (2, 1)


def test_a_fit_alone_on_a_large_split_takes_every_cpu_only_when_they_are_idle(tmp_path: Path) -> None:
    plan = plan_threads(None, cpus=2)
    assert solo_threads(plan, 1_000_000, None, idle=1.9) == 2  # a quiet machine: both
    assert solo_threads(plan, 1_000_000, None, idle=0.9) == 1  # another process holds a CPU: threads would spin
    assert solo_threads(plan, 5_000, None, idle=2.0) == 1  # a small fit: threads cost more than they give
    assert solo_threads(plan_threads(1, cpus=2), 1_000_000, 1, idle=2.0) == 1  # training.threads decides
    assert solo_threads(plan_threads(None, cpus=1), 1_000_000, None, idle=1.0) == 1
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
    assert idle_cpus(window=0, stat=stat) is None  # no time passed: nothing to tell
    assert idle_cpus(window=0, stat=tmp_path / "missing") is None
    measured = idle_cpus(window=0.05)
    assert measured is None or 0 <= measured <= (os.cpu_count() or 1)


def _config(task: str, trials: int = 3) -> object:
    from conveyor.core.config import Config

    return Config.model_validate({
        "name": "t", "source": {"path": "x.csv"},
        "schema": {"target": "y", "task": task, "entity": {"key": "row_id", "generated": True},
                   "event_time": {"kind": "ingest_time"},
                   "columns": {"x": {"type": "float", "role": "numeric"},
                               "y": {"type": "string" if task == "classification" else "float",
                                     "role": "categorical" if task == "classification" else "numeric"}}},
        "training": {"search": {"trials": trials, "folds": 3}},
    })


def test_targets_that_cannot_be_learned_stop_before_any_fit() -> None:
    import pandas as pd

    from conveyor.stages.training._train import _check_target

    flat = pd.DataFrame({"x": range(20), "y": [5.0] * 20})
    with pytest.raises(TrainingError, match=r"the target 'y' is constant \(5.0\) in the training split"):
        _check_target(_config("regression"), flat, flat)  # type: ignore[arg-type]
    one = pd.DataFrame({"x": range(20), "y": ["a"] * 20})
    with pytest.raises(TrainingError, match="holds one class only"):
        _check_target(_config("classification"), one, one)  # type: ignore[arg-type]
    rare = pd.DataFrame({"x": range(20), "y": ["a"] * 18 + ["b"] * 2})
    with pytest.raises(TrainingError, match=r"too few rows per class of 'y' in the training split \('b': 2\)"):
        _check_target(_config("classification"), rare, rare)  # type: ignore[arg-type]
    assert _check_target(_config("classification", trials=0), rare, rare) == ["a", "b"]  # type: ignore[arg-type]


def test_the_rank_sum_auc_equals_scikit_learns_with_ties_and_says_nan_for_one_class() -> None:
    from sklearn.metrics import roc_auc_score

    from conveyor.stages.training._metrics import binary_auc, score_one

    rng = np.random.default_rng(4)
    for n in (7, 500, 20_000):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]  # both classes, however few rows
        score = np.round(rng.random(n) + 0.4 * y, 1)  # coarse: many ties
        assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
        proba = np.column_stack([1 - score, score])
        assert score_one("roc_auc", y, proba) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(binary_auc(np.zeros(5, dtype=int), rng.random(5)))


def test_the_bootstrap_share_past_its_row_cap_still_tells_a_real_model_from_chance() -> None:
    from conveyor.stages.training._metrics import _BOOTSTRAP_ROWS, bootstrap_share

    rng = np.random.default_rng(5)
    n = _BOOTSTRAP_ROWS * 3
    y = rng.integers(0, 2, n)
    good = np.column_stack([1 - (0.3 * y + 0.7 * rng.random(n)), 0.3 * y + 0.7 * rng.random(n)])
    coin = rng.random(n)
    chance = np.column_stack([1 - coin, coin])
    trivial = np.full((n, 2), 0.5)
    assert bootstrap_share("roc_auc", y, good, trivial, seed=1, rounds=50) == 1.0
    assert 0.2 < bootstrap_share("roc_auc", y, chance, np.column_stack([1 - rng.random(n), rng.random(n)]),
                                 seed=1, rounds=50) < 0.8
