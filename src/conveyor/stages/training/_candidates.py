"""The candidates: the trivial model, and the searched baseline and LightGBM, each fitted, scored and logged."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from conveyor.core.workspace import Workspace
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import (
    LIGHTGBM_MAX_ROUNDS,
    REGULARISED,
    Params,
    early_stopping_metric,
    fit,
    lightgbm_space,
    linear_space,
    make_lightgbm,
    make_linear,
    make_trivial,
    untuned_lightgbm,
)
from conveyor.stages.training._logging import _log_datasets, _log_model, _plain
from conveyor.stages.training._metrics import bootstrap_share
from conveyor.stages.training._plots import log_plots
from conveyor.stages.training._search import (
    SearchOutcome,
    SearchTask,
    TrialLogger,
    model_output,
    output_scores,
    predict_scores,
    search,
)
from conveyor.stages.training._seen import log_train_rows
from conveyor.stages.training._threads import LARGE_FIT_ROWS, solo_threads
from conveyor.stages.training._tracking import tracking

if TYPE_CHECKING:
    import numpy as np

    from conveyor.stages.training._model import ConveyorModel
    from conveyor.stages.training._train import _Data

_LINEAR_MAX_TRIALS = 12
_INNER_VALID = 0.15
"""The share of the training split that early stopping watches to choose the final fit's rounds."""
_STOPPING_SHARE = 0.4
"""The share of `training.lightgbm.budget_s` the early-stopping fit may take: the final fit, on
1/0.85 of its rows for as many more rounds, takes about 1.4 times as long."""

Scalar = str | int | float | bool | None


class Candidate(BaseModel):
    """One fitted model, logged as an MLflow run (with its model, except the trivial one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    model_id: str | None
    """None for the trivial model: it is measured, never served."""
    metrics: dict[str, float]
    fit_seconds: float
    search_seconds: float = 0.0
    trials: int = 0
    pruned: int = 0
    stopped_by: str = ""
    """What ended its search: `trials` (`search.trials` done) or `budget` (`search.budget_s` spent)."""
    cv_score: float | None = None
    cv_gain: float | None = None
    """What the search bought: the chosen parameters' CV score over the untuned ones' (positive: better)."""
    params: dict[str, Scalar] = {}
    beats_trivial: float | None = None
    """Share of 200 paired bootstrap resamples of the test split on which it beats the trivial model."""
    untuned_metrics: dict[str, float] | None = None
    """LightGBM with `training.lightgbm` as given, on the same test split (when a search ran)."""
    mlflow_seconds_per_trial: float | None = None
    notes: list[str] = []
    """What the run table should say of this candidate (a fit its budget ended)."""
    averaged: bool = False
    """The model averages the search's choice with the untuned LightGBM (`search.average_untuned`)."""


def _trivial(workspace: Workspace, exp: str, data: _Data) -> tuple[Candidate, np.ndarray]:
    started = time.perf_counter()
    estimator = make_trivial(data.task).fit(data.x_train, data.y_train)
    seconds = time.perf_counter() - started
    output = model_output(estimator, data.task, data.x_test, data.n_classes)
    metrics = output_scores(data.task, data.y_test, output)
    with tracking(data.config, workspace) as mlflow, mlflow.start_run(experiment_id=exp, run_name="trivial") as run:
        mlflow.set_tags(data.tags | {"conveyor.candidate": "trivial"})
        mlflow.log_params({"model": "trivial", "strategy": estimator.get_params()["strategy"], "split": data.how})
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()} | {"fit_seconds": seconds})
    return Candidate(run_id=run.info.run_id, model_id=None, metrics=metrics, fit_seconds=round(seconds, 3)), output


def _factory(name: str, data: _Data, threads: int | None = None) -> Any:
    seed, threads = data.config.training.seed, data.plan.threads if threads is None else threads
    if name == "baseline":
        return lambda params: make_linear(data.task, data.encoder, params, seed)
    stop_on = early_stopping_metric(data.metric.name, data.n_classes)  # what a fold's early stopping watches
    return lambda params: make_lightgbm(data.task, {**params, "metric": stop_on}, seed=seed, threads=threads)


def _searched(
    workspace: Workspace, exp: str, data: _Data, job: SearchTask, logger: TrialLogger, name: str, budget: float,
    trivial_output: np.ndarray,
) -> tuple[Candidate, SearchOutcome]:
    """Search (when a budget is set), refit the best on the whole training split, score on test, log."""
    training = data.config.training
    make = _factory(name, data)
    untuned: Params = (
        untuned_lightgbm(training.lightgbm.model_dump()) if name == "lightgbm"
        else ({"alpha": 1.0} if data.task == "regression" else {"C": 1.0})
    )
    trials = training.search.trials if name == "lightgbm" else min(training.search.trials, _LINEAR_MAX_TRIALS)
    with tracking(data.config, workspace) as mlflow, mlflow.start_run(experiment_id=exp, run_name=name) as run:
        mlflow.set_tags(data.tags | {"conveyor.candidate": name})
        outcome = SearchOutcome(params=untuned, rounds=None, cv_score=None)
        if trials > 0 and budget > 0:
            space = (
                (lambda t: lightgbm_space(t, data.imbalanced, data.skewed, untuned)) if name == "lightgbm"
                else (lambda t: linear_space(t, data.task, data.imbalanced, data.skewed))
            )
            first, variants, also = _starts(name, untuned, data)
            outcome = search(job, name=name, space=space, make=make, n_trials=trials, timeout=budget, first=first,
                             variants=variants, also=also, parent_run=run.info.run_id, logger=logger)
        params = dict(outcome.params)
        notes: list[str] = []
        started = time.perf_counter()
        threads = solo_threads(data.plan, len(data.y_train), training.threads)
        solo = _factory(name, data, threads)  # a fit that runs alone: every idle CPU on a large split
        deadline = stopping_deadline = None
        if name == "lightgbm":
            # the clock bounds the fits of a large split only: a smaller one takes seconds, and its model
            # stays the same to the round from run to run, however busy the machine
            if len(data.y_train) >= LARGE_FIT_ROWS:
                deadline = started + training.lightgbm.budget_s
                stopping_deadline = started + training.lightgbm.budget_s * _STOPPING_SHARE
            configured = training.lightgbm.n_estimators
            # the untuned model as configured (a number of rounds: that many); otherwise early stopping
            # on the training split's latest 15 % (the folds' mean rounds for it lost 0.008 of R² on
            # the taxi example's test split: its time-ordered folds train on 70-94 % of the rows)
            fixed = configured if outcome.kept_first or not outcome.trials else "auto"
            if fixed == "auto":
                params["n_estimators"], capped = _stopped_rounds(solo, params, data, stop_at=stopping_deadline)
                if capped:
                    notes.append(f"LightGBM still improving when training.lightgbm.budget_s ran out: "
                                 f"{params['n_estimators']} rounds")
            else:
                params["n_estimators"] = fixed
        estimator, seconds = _fit_timed(solo(params), data, stop_at=deadline)
        if deadline is not None and time.perf_counter() > deadline:
            notes.append(f"LightGBM's final fit ended at training.lightgbm.budget_s: "
                         f"{estimator.booster_.current_iteration()} of {params['n_estimators']} rounds")
        seconds = time.perf_counter() - started
        untuned_metrics = None
        averaged = False
        sampled = len(job.y) < len(data.y_train)  # a large split: the untuned model's refit would cost a budget more
        if name == "lightgbm" and outcome.trials and not outcome.kept_first and not sampled:
            rounds = training.lightgbm.n_estimators
            rounds = rounds if rounds != "auto" else _stopped_rounds(solo, untuned, data)[0]
            reference, _ = _fit_timed(solo({**untuned, "n_estimators": rounds}), data)
            untuned_metrics = predict_scores(reference, data.task, data.x_test, data.y_test, data.n_classes)
            if training.search.average_untuned:
                from conveyor.stages.training._model import Averaged

                # a CV win of one choice among a few, on folds that may not look like the test period:
                # the model averages the choice with the untuned one, equal weights
                estimator, averaged = Averaged([estimator, reference]), True
                seconds = time.perf_counter() - started
        output = model_output(estimator, data.task, data.x_test, data.n_classes)
        metrics = output_scores(data.task, data.y_test, output)
        share = bootstrap_share(data.metric.name, data.y_test, output, trivial_output, seed=training.seed)
        model = _conveyor_model(data.encoder, estimator, data.task, data.classes)
        per_trial = outcome.mlflow_seconds / outcome.trials if outcome.trials else None
        shown = {k: v for k, v in estimator.get_params().items() if _plain(v)} if name == "lightgbm" else params
        mlflow.log_params({
            "model": name, "split": data.how, "test_size": training.test_size, "seed": training.seed,
            "train_rows": len(data.train_df), "test_rows": len(data.test_df), "threads": data.plan.describe(),
            "features": ",".join(data.config.model_inputs())[:6000], "averaged_with_untuned": averaged,
            **{f"model.{k}": v for k, v in shown.items()},
        })
        logged = {f"test_{k}": v for k, v in metrics.items()} | {
            "fit_seconds": seconds, "search_seconds": outcome.seconds, "trials": outcome.trials,
            "pruned_trials": outcome.pruned,
        }
        if outcome.cv_score is not None:
            logged[f"cv_{data.metric.name}"] = outcome.cv_score
        if outcome.gain is not None:
            logged["cv_gain_over_untuned"] = outcome.gain
        if per_trial is not None:
            logged["mlflow_seconds_per_trial"] = per_trial
        logged["beats_trivial_share"] = share
        if untuned_metrics:
            logged |= {f"untuned_test_{k}": v for k, v in untuned_metrics.items()}
        mlflow.log_metrics(logged)
        _log_datasets(mlflow, data)
        log_train_rows(mlflow, data.config, data.train_df)  # what a later gate must not score it on
        info = _log_model(mlflow, model, data.test_df[data.config.model_inputs()].head(5),
                          data.tags | {"conveyor.candidate": name, "conveyor.run": run.info.run_id})
        # a regressor's test predictions are `output` already; a classifier's plots want its labels too
        shown_outputs = {"prediction": output} if data.task == "regression" else model.predict_frame(data.test_df)
        log_plots(mlflow, data.task, data.test_df[data.config.schema.target].to_numpy(), shown_outputs, model,
                  outcome.history, data.metric)
    candidate = Candidate(
        run_id=run.info.run_id, model_id=info.model_id, metrics=metrics, fit_seconds=round(seconds, 3),
        search_seconds=round(outcome.seconds, 3), trials=outcome.trials, pruned=outcome.pruned,
        stopped_by=outcome.stopped_by if outcome.trials else "",
        cv_score=outcome.cv_score, cv_gain=None if outcome.gain is None else round(outcome.gain, 6),
        params={k: v for k, v in params.items() if _plain(v)},
        beats_trivial=share, untuned_metrics=untuned_metrics, mlflow_seconds_per_trial=None if per_trial is None else round(per_trial, 5),
        notes=notes, averaged=averaged,
    )
    return candidate, outcome


def _starts(name: str, untuned: Params, data: _Data) -> tuple[Params, list[Params], Params | None]:
    """The search's enqueued trials: the untuned parameters (every searched choice at its plain
    value), then the same with a log target (skewed) or balanced weights (imbalanced), then
    LightGBM's regularised start."""
    plain: Params = {}
    if data.skewed:
        plain["target"] = "none"
    if data.imbalanced:
        plain["class_weight"] = None
    first = {**untuned, **plain}
    variants = []
    if data.skewed:
        variants.append({**first, "target": "log"})
    if data.imbalanced:
        variants.append({**first, "class_weight": "balanced"})
    also = {**REGULARISED, **plain} if name == "lightgbm" else None
    return first, variants, also


def _stopped_rounds(make: Any, params: Params, data: _Data, stop_at: float | None = None) -> tuple[int, bool]:
    """Boosting rounds for a fit on the whole training split: early stopping on its latest 15 % (by
    time), or a seeded random 15 % (stratified for classes), scaled up to the whole split; and
    whether `stop_at` (the clock) ended it while it still improved."""
    import numpy as np

    n = len(data.y_train)
    valid_rows = max(1, int(n * _INNER_VALID))
    index = np.arange(n)
    if data.how == "time":
        fit_idx, valid_idx = index[: n - valid_rows], index[n - valid_rows :]
    else:
        from sklearn.model_selection import train_test_split

        seed = data.config.training.seed
        try:
            fit_idx, valid_idx = train_test_split(index, test_size=valid_rows, random_state=seed,
                                                  stratify=data.y_train if data.classes is not None else None)
        except ValueError:  # a class too rare to stratify on so few rows
            fit_idx, valid_idx = train_test_split(index, test_size=valid_rows, random_state=seed)
    estimator = make({**params, "n_estimators": LIGHTGBM_MAX_ROUNDS})
    fit(estimator, data.x_train[fit_idx], data.y_train[fit_idx], data.encoder,
        valid=(data.x_train[valid_idx], data.y_train[valid_idx]), stop_at=stop_at, keep_at_deadline=True)
    capped = stop_at is not None and time.perf_counter() > stop_at
    best = int(getattr(estimator, "best_iteration_", 0) or 0) or LIGHTGBM_MAX_ROUNDS
    return max(1, min(LIGHTGBM_MAX_ROUNDS, round(best * n / len(fit_idx)))), capped


def _fit_timed(estimator: Any, data: _Data, stop_at: float | None = None) -> tuple[Any, float]:
    started = time.perf_counter()
    fit(estimator, data.x_train, data.y_train, data.encoder, stop_at=stop_at, keep_at_deadline=True)
    return estimator, time.perf_counter() - started


def _conveyor_model(encoder: FeatureEncoder, estimator: Any, task: str, classes: list[Any] | None) -> ConveyorModel:
    from conveyor.stages.training._model import ConveyorModel

    model = ConveyorModel(encoder, estimator, task, classes)
    model.set_threads(1)  # logged for serving: one small batch at a time, where threads only spin
    return model
