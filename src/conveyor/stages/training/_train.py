"""Train: the trivial model, a searched linear baseline and searched LightGBM, tracked in MLflow.

Every candidate is scored on the same held-out test split; hyperparameters are chosen by
cross-validation on the training split only (`_search.py`), then refit on the whole training
split. The promotion gate (`_registry.py`) decides between the candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.cleaning import MissingValues
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import (
    REGULARISED,
    Params,
    early_stopping_metric,
    fit,
    lightgbm_space,
    linear_space,
    make_lightgbm,
    make_linear,
    make_trivial,
    skewed_target,
    untuned_lightgbm,
)
from conveyor.stages.training._metrics import Metric, beats, bootstrap_share, metric_for
from conveyor.stages.training._plots import log_plots
from conveyor.stages.training._portable import model_code, sys_path_kept
from conveyor.stages.training._sample import TRAINED_ON_TAG, trained_on
from conveyor.stages.training._search import (
    SearchOutcome,
    SearchTask,
    TrialLogger,
    cv_folds,
    model_output,
    output_scores,
    predict_scores,
    search,
)
from conveyor.stages.training._split import split_frame
from conveyor.stages.training._threads import ThreadPlan, plan_threads
from conveyor.stages.training._tracking import client, experiment_id, pip_requirements, quiet, store_path, tracking

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.stages.training._model import ConveyorModel

__all__ = [
    "CANDIDATES", "TRAIN_VERSION", "Candidate", "TrainResult", "TrainingSetInput", "config_digest", "load_split",
    "primary_metric", "train",
]

TRAIN_VERSION = 3
CANDIDATES = ("trivial", "baseline", "lightgbm")
"""In order of simplicity: on a tie, the simpler candidate wins."""
_LINEAR_MAX_TRIALS = 12
_LINEAR_BUDGET_SHARE = 0.25
_IMBALANCED = 0.25
"""A class with less than this share of the training rows makes class weighting a searched choice: the
untuned parameters with balanced weights are a trial of their own, and CV decides (measured on the
credit-default data, 22 % defaults: balanced weights, ROC AUC 0.7800 against 0.7807; for f1 they help)."""

Scalar = str | int | float | bool | None


@runtime_checkable
class TrainingSetInput(Protocol):
    """What training reads of the dataset stage's result (the rest is the artifact's file)."""

    @property
    def rows(self) -> int: ...


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
    cv_score: float | None = None
    cv_gain: float | None = None
    """What the search bought: the chosen parameters' CV score over the untuned ones' (positive: better)."""
    params: dict[str, Scalar] = {}
    beats_trivial: float | None = None
    """Share of 200 paired bootstrap resamples of the test split on which it beats the trivial model."""
    untuned_metrics: dict[str, float] | None = None
    """LightGBM with `training.lightgbm` as given, on the same test split (when a search ran)."""
    mlflow_seconds_per_trial: float | None = None


class TrainResult(Result):
    kind: ClassVar[str] = "trained"

    experiment_id: str
    primary_metric: str
    greater_is_better: bool = True
    split: str
    cv: str = ""
    threads: str = ""
    train_rows: int
    test_rows: int
    candidates: dict[str, Candidate]
    best: str
    """The best candidate on the test split that can be served (never `trivial`)."""
    search_stopped_by: str = "no search"
    notes: list[str] = []
    kept_untuned: list[str] = []
    """Candidates whose search found nothing better than the untuned parameters beyond CV noise."""

    def summary(self) -> str:
        metric = self.primary_metric
        parts = []
        for name, c in self.candidates.items():
            value = c.metrics.get(metric)
            shown = "n/a" if value is None else f"{value:.4f}"
            timing = f"{c.fit_seconds:.1f}s"
            if c.trials:
                pruned = f", {c.pruned} pruned" if c.pruned else ""
                gain = "" if c.cv_gain is None else f", CV {c.cv_gain:+.4f} over untuned"
                timing += f" + search {c.search_seconds:.1f}s: {c.trials} trials{pruned}{gain}"
            parts.append(f"{name} {shown} ({timing})")
        way = "higher" if self.greater_is_better else "lower"
        line = f"{self.split} {self.train_rows}/{self.test_rows}, {metric} ({way} better): " + ", ".join(parts)
        return line + "".join(f"; {note}" for note in self.notes)


def primary_metric(task: str, classes: list[Any] | None, configured: str | None = None) -> str:
    return metric_for(configured, task, None if classes is None else len(classes)).name


def config_digest(config: Config) -> str:
    """The digest of the whole project file as validated (what `conveyor models show` names)."""
    return hash_json(config.model_dump(mode="json", by_alias=True))


def load_split(config: Config, training_set: Artifact[TrainingSetInput]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from conveyor.stages.training._sample import read_training_rows

    return split_frame(read_training_rows(config, training_set.path).frame, config)


def _check_target(config: Config, train: pd.DataFrame, test: pd.DataFrame) -> list[Any] | None:
    """One clear error before any fit: a constant target, one class, too few rows of a class."""
    target, task = config.schema.target, config.schema.task
    values = train[target].dropna()
    if task == "regression":
        if values.nunique() < 2:
            first = values.iloc[0] if len(values) else None
            shown = first.item() if first is not None and hasattr(first, "item") else first
            raise TrainingError(f"the target {target!r} is constant ({shown!r}) in the training split: nothing to learn")
        return None
    classes = sorted(values.unique().tolist(), key=str)
    if len(classes) < 2:
        raise TrainingError(
            f"the training split holds one class only ({classes}) of {target!r}; a classifier needs at least two"
        )
    search = config.training.search
    need = search.min_folds if search.trials > 0 else 2
    counts = values.astype(str).value_counts()
    rare = counts[counts < need]
    if len(rare):
        shown = ", ".join(f"{k!r}: {v}" for k, v in rare.items())
        raise TrainingError(
            f"too few rows per class of {target!r} in the training split ({shown}); each class needs at least "
            f"{need} (training.search.folds); add rows or merge rare classes"
        )
    if len(classes) == 2 and test[target].astype(str).nunique() < 2:
        raise TrainingError(
            f"the test split holds one class only of {target!r}, so it cannot rank the candidates; "
            "use more rows, or training.split: random (stratified)"
        )
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _check_sizes(train_df: pd.DataFrame, test_df: pd.DataFrame, training_set: Artifact[TrainingSetInput]) -> None:
    if len(train_df) < 10 or len(test_df) < 2:
        raise TrainingError(
            f"too few rows to train and test: {len(train_df)} train, {len(test_df)} test (from {training_set.path})"
        )


@dataclass(frozen=True)
class _Data:
    """The split as matrices, with everything a candidate needs to fit, log and be scored."""

    config: Config
    training_set: Artifact[TrainingSetInput]
    train_df: pd.DataFrame
    test_df: pd.DataFrame
    how: str
    encoder: FeatureEncoder
    classes: list[Any] | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    metric: Metric
    imbalanced: bool
    skewed: bool
    """A non-negative regression target with a long right tail: a log1p target is a searched choice."""
    plan: ThreadPlan
    tags: dict[str, str]
    datasets: list[tuple[Any, str]] = field(default_factory=list)
    """The MLflow datasets of the split, made once for every candidate (`_log_datasets`)."""

    @property
    def task(self) -> str:
        return self.config.schema.task

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0


def _prepare(
    config: Config, training_set: Artifact[TrainingSetInput], feature_service: str | None
) -> _Data:
    import numpy as np

    from conveyor.stages.training._metrics import class_index

    schema = config.schema
    train_df, test_df, how = load_split(config, training_set)
    _check_sizes(train_df, test_df, training_set)
    classes = _check_target(config, train_df, test_df)
    metric = metric_for(config.training.metric, schema.task, None if classes is None else len(classes))
    target = schema.target
    if metric.name == "rmsle" and float(train_df[target].min()) < 0:
        raise TrainingError(f"training.metric: rmsle needs a non-negative target; {target!r} goes down to "
                            f"{train_df[target].min()}")
    encoder = FeatureEncoder(config.model_numeric(), schema.categorical(), MissingValues(config.cleaning.null_values))
    encoder.fit(train_df)
    if classes is None:
        y_train, y_test = train_df[target].to_numpy(dtype=float), test_df[target].to_numpy(dtype=float)
        imbalanced = False
    else:
        y_train, y_test = class_index(train_df[target].tolist(), classes), class_index(test_df[target].tolist(), classes)
        imbalanced = bool(np.bincount(y_train).min() / len(y_train) < _IMBALANCED)
    skewed = classes is None and skewed_target(y_train)
    tags = {
        "conveyor.project": config.name,
        "conveyor.training_set": training_set.digest,
        "conveyor.clean_data": training_set.inputs.get("clean", ""),
        "conveyor.feature_service": feature_service or "",
        "conveyor.config": config_digest(config),
        "conveyor.primary_metric": metric.name,
    }
    tags[TRAINED_ON_TAG] = trained_on(len(train_df) + len(test_df), training_set.result.rows, config.training.max_rows)
    return _Data(
        config, training_set, train_df, test_df, how, encoder, classes, encoder.transform(train_df), y_train,
        encoder.transform(test_df), y_test, metric, imbalanced, skewed, plan_threads(config.training.threads), tags,
    )


def train(
    config: Config,
    workspace: Workspace,
    training_set: Artifact[TrainingSetInput],
    feature_service: str | None = None,
) -> Artifact[TrainResult]:
    """Fit every candidate on the train split (searched by CV on it), score all on the test split, log all."""
    data = _prepare(config, training_set, feature_service)
    with quiet():
        return _train(config, workspace, training_set, data)


def _train(config: Config, workspace: Workspace, training_set: Artifact[TrainingSetInput], data: _Data) -> Artifact[TrainResult]:
    search_cfg = config.training.search
    k = search_cfg.folds_for(len(data.train_df))
    if search_cfg.folds == "auto" and data.classes is not None:  # stratified: every class in every fold
        k = max(2, min(k, *_class_counts(data.y_train)))
    folds, cv = cv_folds(
        len(data.train_df), k, time_ordered=data.how == "time",
        y=data.y_train if data.classes is not None else None, seed=config.training.seed,
    )
    mlflow_client = client(config, workspace)
    exp = experiment_id(mlflow_client, config, workspace, config.name)
    job = SearchTask(data.task, data.metric, data.x_train, data.y_train, data.n_classes, data.encoder, folds,
                     data.plan, config.training.seed)
    logger = TrialLogger(mlflow_client, exp)
    try:
        return _train_candidates(config, workspace, training_set, data, job, logger, exp, cv)
    finally:
        logger.close()


def _class_counts(y: np.ndarray) -> list[int]:
    import numpy as np

    counts = np.bincount(y)
    return [int(c) for c in counts[counts > 0]]


def _train_candidates(
    config: Config, workspace: Workspace, training_set: Artifact[TrainingSetInput], data: _Data, job: SearchTask,
    logger: TrialLogger, exp: str, cv: str,
) -> Artifact[TrainResult]:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    search_cfg = config.training.search
    deadline = time.perf_counter() + search_cfg.seconds
    candidates: dict[str, Candidate] = {}
    stopped: list[str] = []
    kept: list[str] = []
    regularised: list[str] = []
    with threadpool_limits(limits=data.plan.threads):  # BLAS and OpenMP pools: never more threads than planned
        candidates["trivial"], trivial_output = _trivial(workspace, exp, data)
        for name in ("baseline", "lightgbm"):
            remaining = max(0.0, deadline - time.perf_counter())
            # the baseline may use a quarter; LightGBM, the likely champion, keeps at least the rest
            # even when the baseline's first trial ran over (a slow linear fit on a busy machine)
            budget = remaining * _LINEAR_BUDGET_SHARE if name == "baseline" else max(
                remaining, search_cfg.seconds * (1 - _LINEAR_BUDGET_SHARE))
            candidate, outcome = _searched(workspace, exp, data, job, logger, name, budget, trivial_output)
            candidates[name] = candidate
            if outcome.trials:
                stopped.append(outcome.stopped_by)
                if outcome.kept_first:
                    kept.append(name)
                if outcome.kept_also:
                    regularised.append(name)
    best = _best(data.metric.name, candidates)
    notes = _notes(data.metric.name, candidates, data.config.training.search.trials)
    if len(data.train_df) + len(data.test_df) < data.training_set.result.rows:
        notes.insert(0, data.tags[TRAINED_ON_TAG])
    if kept:
        notes.append(f"untuned {'+'.join(kept)} kept (no trial beat it by 1 SE on CV)")
    if regularised:
        notes.append(f"regularised start of {'+'.join(regularised)} kept (no trial beat it by 1 SE on CV)")
    result = TrainResult(
        experiment_id=exp, primary_metric=data.metric.name, greater_is_better=data.metric.greater_is_better,
        split=data.how, cv=cv if search_cfg.trials else "", threads=data.plan.describe(),
        train_rows=len(data.train_df), test_rows=len(data.test_df), candidates=candidates, best=best,
        search_stopped_by="budget" if "budget" in stopped else ("trials" if stopped else "no search"), notes=notes,
        kept_untuned=kept,
    )
    digest = hash_json({"training_set": training_set.digest, "training": config.section("training"),
                        "runs": {n: c.run_id for n, c in candidates.items()}, "version": TRAIN_VERSION})
    return Artifact("trained", store_path(config, workspace), digest, result, {"training_set": training_set.digest})


def _best(metric: str, candidates: dict[str, Candidate]) -> str:
    """The best servable candidate on the test split; on a tie the simpler one."""
    best = "baseline"
    for name in ("lightgbm",):
        if metric in candidates[name].metrics and (
            metric not in candidates[best].metrics or beats(metric, candidates[name].metrics[metric], candidates[best].metrics[metric])
        ):
            best = name
    return best


def _notes(metric: str, candidates: dict[str, Candidate], trials: int) -> list[str]:
    notes = []
    lgbm = candidates["lightgbm"]
    if lgbm.untuned_metrics and metric in lgbm.untuned_metrics and metric in lgbm.metrics:
        tuned, untuned = lgbm.metrics[metric], lgbm.untuned_metrics[metric]
        if beats(metric, untuned, tuned):
            notes.append(
                f"searched LightGBM below untuned on test ({tuned:.4f} < {untuned:.4f}), CV choice kept"
            )
    return notes


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


def _factory(name: str, data: _Data) -> Any:
    seed, threads = data.config.training.seed, data.plan.threads
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
                (lambda t: lightgbm_space(t, data.imbalanced, data.skewed)) if name == "lightgbm"
                else (lambda t: linear_space(t, data.task, data.imbalanced, data.skewed))
            )
            first, variants, also = _starts(name, untuned, data)
            outcome = search(job, name=name, space=space, make=make, n_trials=trials, timeout=budget, first=first,
                             variants=variants, also=also, parent_run=run.info.run_id, logger=logger)
        params = dict(outcome.params)
        if name == "lightgbm":
            untuned_rounds = training.lightgbm.n_estimators
            # the untuned model as configured (its rounds too: the folds' early-stopping rounds for it
            # lost 0.008 of R² on the taxi example's test split); a searched one, early stopping's rounds
            params["n_estimators"] = untuned_rounds if outcome.kept_first else (outcome.rounds or untuned_rounds)
        estimator, seconds = _fit_timed(make(params), data)
        output = model_output(estimator, data.task, data.x_test, data.n_classes)
        metrics = output_scores(data.task, data.y_test, output)
        share = bootstrap_share(data.metric.name, data.y_test, output, trivial_output, seed=training.seed)
        untuned_metrics = None
        if name == "lightgbm" and outcome.trials and not outcome.kept_first:
            reference, _ = _fit_timed(make({**untuned, "n_estimators": training.lightgbm.n_estimators}), data)
            untuned_metrics = predict_scores(reference, data.task, data.x_test, data.y_test, data.n_classes)
        model = _conveyor_model(data.encoder, estimator, data.task, data.classes)
        per_trial = outcome.mlflow_seconds / outcome.trials if outcome.trials else None
        shown = {k: v for k, v in estimator.get_params().items() if _plain(v)} if name == "lightgbm" else params
        mlflow.log_params({
            "model": name, "split": data.how, "test_size": training.test_size, "seed": training.seed,
            "train_rows": len(data.train_df), "test_rows": len(data.test_df), "threads": data.plan.describe(),
            "features": ",".join(data.config.model_inputs())[:6000],
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
        info = _log_model(mlflow, model, data.test_df[data.config.model_inputs()].head(5),
                          data.tags | {"conveyor.candidate": name, "conveyor.run": run.info.run_id})
        log_plots(mlflow, data.task, data.test_df[data.config.schema.target].to_numpy(),
                  model.predict_frame(data.test_df), model, outcome.history, data.metric)
    candidate = Candidate(
        run_id=run.info.run_id, model_id=info.model_id, metrics=metrics, fit_seconds=round(seconds, 3),
        search_seconds=round(outcome.seconds, 3), trials=outcome.trials, pruned=outcome.pruned,
        cv_score=outcome.cv_score, cv_gain=None if outcome.gain is None else round(outcome.gain, 6),
        params={k: v for k, v in params.items() if _plain(v)},
        beats_trivial=share, untuned_metrics=untuned_metrics, mlflow_seconds_per_trial=None if per_trial is None else round(per_trial, 5),
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


def _fit_timed(estimator: Any, data: _Data) -> tuple[Any, float]:
    started = time.perf_counter()
    fit(estimator, data.x_train, data.y_train, data.encoder)
    return estimator, time.perf_counter() - started


def _conveyor_model(encoder: FeatureEncoder, estimator: Any, task: str, classes: list[Any] | None) -> ConveyorModel:
    from conveyor.stages.training._model import ConveyorModel

    model = ConveyorModel(encoder, estimator, task, classes)
    model.set_threads(1)  # logged for serving: one small batch at a time, where threads only spin
    return model


def _log_datasets(mlflow: Any, data: _Data) -> None:
    if not data.datasets:
        data.datasets.extend((_dataset(data, frame, suffix), context) for frame, suffix, context in
                             ((data.train_df, "train", "training"), (data.test_df, "test", "testing")))
    for dataset, context in data.datasets:
        mlflow.log_input(dataset, context=context)


def _dataset(data: _Data, frame: pd.DataFrame, suffix: str) -> Any:
    """An MLflow `PandasDataset` of one side of the split, its schema read without a pass per cell.

    MLflow infers a pandas schema cell by cell in Python (minutes for 1M rows) and hashes the
    rows for its digest. Here the column types come from the first rows, whether a column is
    required from a vectorised null check of every row, and the digest from the training
    set's content hash, the side and the row count.
    """
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types.schema import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    name, target = data.config.name, data.config.schema.target
    digest = hash_json({"training_set": data.training_set.digest, "side": suffix, "rows": len(frame)})[:8]

    class _Split(PandasDataset):
        @cached_property
        def schema(self) -> Any:
            head = _infer_schema(frame.head(1000))
            nulls = frame.isna().any()
            specs = [ColSpec(c.type, c.name, required=not bool(nulls[c.name]))  # type: ignore[arg-type]
                     for c in head.inputs]
            return Schema(specs)  # type: ignore[arg-type]

    # a local file: MLflow registers two equivalent local sources and warns when it has to choose
    local: Any = next(s for s in get_registered_sources() if getattr(s, "__name__", "") == "LocalArtifactDatasetSource")
    source = local(str(data.training_set.path))
    return _Split(frame, source=source, targets=target, name=f"{name}-{suffix}", digest=digest)


def _log_model(mlflow: Any, model: ConveyorModel, example: pd.DataFrame, tags: dict[str, str]) -> Any:
    """The pyfunc with its own code (`code/conveyor`) and pinned requirements: it loads and
    serves (`mlflow models serve`) where those are installed and Conveyor is not."""
    import tempfile
    from pathlib import Path

    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(None, example))
    with tempfile.TemporaryDirectory(prefix="conveyor-model-code-") as folder, sys_path_kept():
        return mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=signature, input_example=example,
            pip_requirements=pip_requirements(), code_paths=[str(model_code(Path(folder)))], tags=tags,
        )


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
