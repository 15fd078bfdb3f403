"""Hyperparameter search: Optuna, cross-validated on the training split only.

Trials run one after another with a seeded TPE sampler, so the same data and config give the
same trials, hyperparameters and metrics (as long as `search.trials`, not `search.budget_s`,
ends the search). The first trial is the untuned model's parameters (a warm start: the search
can only keep it or beat it). Inside a trial the folds run side by side on the usable CPUs,
each fit on one thread (see `_threads.py`) and each LightGBM fit stopped early on its fold;
the median pruner stops a trial after a wave of folds that scores below the median of earlier
trials, and a trial still running when the budget is spent is stopped inside its fits (LightGBM
checks the clock after each round) and pruned. Each
trial is a nested MLflow run under its candidate's run, written with three client calls
(create, one `log_batch`, terminate) on a thread of its own, while the next trial fits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.core.progress import report
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import LIGHTGBM_MAX_ROUNDS, OverBudget, Params, fit
from conveyor.stages.training._metrics import Metric, classification_scores, regression_scores
from conveyor.stages.training._threads import ThreadPlan

if TYPE_CHECKING:
    import numpy as np
    import optuna

__all__ = ["Folds", "SearchOutcome", "TrialLogger", "cv_folds", "model_output", "output_scores", "predict_scores", "search"]

Folds = list[tuple["np.ndarray", "np.ndarray"]]


def cv_folds(n_rows: int, k: int, *, time_ordered: bool, y: np.ndarray | None, seed: int) -> tuple[Folds, str]:
    """Folds over the training split: time-ordered (rows already sorted by time), else (stratified) K-fold."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    index = np.arange(n_rows)
    if time_ordered:
        # the validation windows tile the latest 30 % of the training split, so every fold trains on at
        # least 70 % of it and is tested on the period right after, like the final model: early folds
        # trained on a sliver of the history (say, one season of a growing series) pick the wrong model
        splitter = TimeSeriesSplit(n_splits=k, test_size=max(1, (3 * n_rows) // (10 * k)))
        return [(a, b) for a, b in splitter.split(index)], f"time-ordered {k}-fold (expanding window)"
    if y is not None:
        counts = np.bincount(y)
        if counts[counts > 0].min() >= k:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(index, y)
            return [(a, b) for a, b in folds], f"stratified {k}-fold"
    return [(a, b) for a, b in KFold(n_splits=k, shuffle=True, random_state=seed).split(index)], f"{k}-fold"


def model_output(estimator: Any, task: str, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Predictions (regression) or n x k probabilities; classes a fold never saw get probability 0."""
    import numpy as np

    if task == "regression":
        return np.asarray(estimator.predict(x), dtype=float)
    proba = np.asarray(estimator.predict_proba(x), dtype=float)
    if proba.shape[1] != n_classes:
        seen = np.asarray(estimator.classes_, dtype=int)
        if len(seen) == 1:  # a fold of one class: LightGBM still answers two columns; it is that class
            proba = np.ones((len(x), 1))
        full = np.zeros((len(x), n_classes))
        full[:, seen] = proba
        proba = full
    return proba


def output_scores(task: str, y: np.ndarray, output: np.ndarray) -> dict[str, float]:
    return regression_scores(y, output) if task == "regression" else classification_scores(y, output)


def predict_scores(estimator: Any, task: str, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Every metric of a fitted estimator on (x, y)."""
    return output_scores(task, y, model_output(estimator, task, x, n_classes))


class TrialLogger:
    """Writes each trial as a nested MLflow run: create, one `log_batch`, terminate.

    The writes run on one thread of their own, in order, while the search goes on (measured on
    the bike data: 35-90 ms a trial on SQLite, 3 s of a 12-trial baseline search); `drain`
    waits for them and re-raises the first error.
    """

    def __init__(self, client: Any, experiment_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.seconds = 0.0
        self.count = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-trials")
        self._pending: list[Future[None]] = []

    def log(self, parent: str, name: str, number: int, params: Params, metrics: dict[str, float], state: str) -> None:
        self._pending.append(self._writer.submit(self._write, parent, name, number, dict(params), dict(metrics), state))

    def drain(self) -> None:
        """Wait until every trial is written; the first failure is raised."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._writer.shutdown()

    def _write(self, parent: str, name: str, number: int, params: Params, metrics: dict[str, float], state: str) -> None:
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param

        started = time.perf_counter()
        now = int(time.time() * 1000)
        run = self.client.create_run(
            self.experiment_id,
            start_time=now,
            tags={"mlflow.parentRunId": parent, "conveyor.trial": str(number), "conveyor.candidate": name,
                  "conveyor.trial_state": state},
            run_name=f"{name}-trial-{number:03d}",
        )
        self.client.log_batch(
            run.info.run_id,
            metrics=[MlflowMetric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED" if state == "COMPLETE" else "KILLED", end_time=now)
        self.seconds += time.perf_counter() - started
        self.count += 1


@dataclass
class SearchOutcome:
    params: Params
    rounds: int | None
    """LightGBM: boosting rounds for the refit (mean early-stopping round over the folds, +15 %)."""
    cv_score: float | None
    trials: int = 0
    pruned: int = 0
    seconds: float = 0.0
    mlflow_seconds: float = 0.0
    stopped_by: str = "no search"
    history: list[tuple[int, float | None, str]] = field(default_factory=list)
    kept_first: bool = False
    """No trial beat the first one (the untuned parameters) by more than one standard error of the
    paired fold differences: the first one is kept (the one-standard-error rule)."""
    kept_also: bool = False
    """Else the same rule kept the second trial (`also`: the regularised start)."""
    untuned_cv: float | None = None
    """The CV score of the first trial (the untuned parameters): what the search had to beat."""
    gain: float | None = None
    """What the search bought: the chosen trial's CV score over the untuned one's, in metric units,
    positive when better (whichever way the metric goes)."""


@dataclass(frozen=True)
class SearchTask:
    """What a search runs on: the training split as a matrix, its folds, and how to fit."""

    task: str
    metric: Metric
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    encoder: FeatureEncoder
    folds: Folds
    plan: ThreadPlan
    seed: int


def _sampler(seed: int) -> Any:
    import optuna

    # Optuna 4.9 stopped warning about independent sampling by default and deprecated the switch
    # (passing it is a FutureWarning, in a notebook's output); before 4.9 it is how to silence it.
    if _version(optuna.__version__) >= (4, 9):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True, warn_independent_sampling=False)


def _version(text: str) -> tuple[int, ...]:
    """`4.9.0` (or `4.10.0.dev`) as (4, 9, 0): the leading numbers, compared as numbers."""
    numbers = []
    for part in text.split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _waves(folds: Folds, width: int) -> Iterator[Folds]:
    for start in range(0, len(folds), width):
        yield folds[start : start + width]


def search(
    job: SearchTask,
    *,
    name: str,
    space: Callable[[optuna.Trial], Params],
    make: Callable[[Params], Any],
    n_trials: int,
    timeout: float,
    first: Params,
    variants: list[Params] | None = None,
    also: Params | None = None,
    parent_run: str,
    logger: TrialLogger,
) -> SearchOutcome:
    """Search `space` for `n_trials` (or until `timeout` seconds), starting from `first`, then the
    `variants` of it the data calls for (a log target, class weights), then `also`."""
    import warnings

    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    is_lightgbm = name == "lightgbm"
    deadline = time.perf_counter() + timeout
    metric = job.metric.name

    def run_fold(params: Params, fold: tuple[np.ndarray, np.ndarray], stop_at: float | None) -> tuple[float, int | None]:
        train_idx, valid_idx = fold
        estimator = make(params)
        valid = (job.x[valid_idx], job.y[valid_idx]) if is_lightgbm else None
        fit(estimator, job.x[train_idx], job.y[train_idx], job.encoder, valid=valid, stop_at=stop_at)
        scores = predict_scores(estimator, job.task, job.x[valid_idx], job.y[valid_idx], job.n_classes)
        rounds = (int(getattr(estimator, "best_iteration_", 0) or 0) or None) if is_lightgbm else None
        return scores.get(metric, float("nan")), rounds

    pool = ThreadPoolExecutor(max_workers=job.plan.workers) if job.plan.workers > 1 else None

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        params = space(trial)
        values: list[float] = []
        rounds: list[int] = []
        state = "COMPLETE"
        # the first trial (the untuned parameters: what the search must beat) always finishes; a later
        # one is stopped mid-fit when the budget is spent, not at the end of its wave of folds
        stop_at = deadline if trial.number > 0 else None
        try:
            for wave in _waves(job.folds, job.plan.workers):
                try:
                    results = (list(pool.map(lambda f: run_fold(params, f, stop_at), wave)) if pool
                               else [run_fold(params, f, stop_at) for f in wave])
                except OverBudget:
                    state = "PRUNED"
                    raise optuna.TrialPruned() from None
                values += [v for v, _ in results]
                rounds += [r for _, r in results if r]
                trial.report(float(np.nanmean(values)), step=len(values) - 1)
                over_budget = trial.number > 0 and time.perf_counter() > deadline and len(values) < len(job.folds)
                if over_budget or trial.should_prune():
                    state = "PRUNED"
                    raise optuna.TrialPruned()
        finally:
            value = float(np.nanmean(values)) if values else float("nan")
            trial.set_user_attr("rounds", int(round(float(np.mean(rounds)) * 1.15)) if rounds else None)
            trial.set_user_attr("folds", values)
            metrics = {f"cv_{metric}": value, "trial_seconds": time.perf_counter() - started}
            shown = {**params, **({"n_estimators": trial.user_attrs["rounds"]} if rounds else {})}
            shown["cv_folds"] = ",".join(f"{v:.5g}" for v in values)
            logger.log(parent_run, name, trial.number, shown, metrics, state)
            report(f"{name} search", trial.number + 1, n_trials)
        return value

    direction = "maximize" if job.metric.greater_is_better else "minimize"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0) if is_lightgbm else optuna.pruners.NopPruner()
    started = time.perf_counter()
    logged_before = logger.seconds
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction=direction, sampler=_sampler(job.seed), pruner=pruner)
            study.enqueue_trial(first)
            for variant in variants or []:
                study.enqueue_trial(variant)
            if also is not None and n_trials > 1:
                study.enqueue_trial(also)
            report(f"{name} search", 0, n_trials)
            study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(ValueError,))
    finally:
        if pool is not None:
            pool.shutdown()
        logger.drain()
    seconds = time.perf_counter() - started
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                and not np.isnan(t.value)]
    history = [(t.number, t.value, t.state.name) for t in study.trials]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    stopped_by = "trials" if len(study.trials) >= n_trials else "budget"
    if not finished:
        return SearchOutcome(dict(first), None, None, len(study.trials), pruned, seconds, logger.seconds - logged_before,
                             stopped_by, history)
    best = study.best_trial
    first_value = study.trials[0].value if study.trials[0].state == optuna.trial.TrialState.COMPLETE else None
    untuned_cv = None if first_value is None or np.isnan(first_value) else float(first_value)
    kept_first = _within_one_se(study.trials[0], best, job.metric)
    kept_also = False
    if kept_first:
        best = study.trials[0]
    elif also is not None and len(study.trials) > (at := 1 + len(variants or [])) and best.number != at:
        # the one-standard-error rule again, for the second simplest choice: the regularised start
        kept_also = _within_one_se(study.trials[at], best, job.metric)
        if kept_also:
            best = study.trials[at]
    params = dict(best.params)
    rounds = best.user_attrs.get("rounds")
    return SearchOutcome(
        params=params,
        rounds=min(int(rounds), LIGHTGBM_MAX_ROUNDS) if rounds else None,
        cv_score=float(best.value) if best.value is not None else None,
        trials=len(study.trials),
        pruned=pruned,
        seconds=seconds,
        mlflow_seconds=logger.seconds - logged_before,
        stopped_by=stopped_by,
        history=history,
        kept_first=kept_first,
        kept_also=kept_also,
        untuned_cv=untuned_cv,
        gain=None if untuned_cv is None or best.value is None else
        (1 if job.metric.greater_is_better else -1) * (float(best.value) - untuned_cv),
    )


def _within_one_se(first: Any, best: Any, metric: Metric) -> bool:
    """The one-standard-error rule, paired by fold: is the best trial's CV gain over the first
    one (the untuned parameters) within the noise of the folds?"""
    import numpy as np

    if first.number == best.number or first.value is None or np.isnan(first.value):
        return bool(first.number == best.number)
    a = np.asarray(best.user_attrs.get("folds") or [], dtype=float)
    b = np.asarray(first.user_attrs.get("folds") or [], dtype=float)
    if len(a) != len(b) or len(a) < 2:
        return False
    gains = (a - b) if metric.greater_is_better else (b - a)
    return bool(gains.mean() <= gains.std(ddof=1) / np.sqrt(len(gains)))
