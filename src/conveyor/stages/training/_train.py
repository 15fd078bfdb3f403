"""Train: the trivial model, a searched linear baseline and searched LightGBM, tracked in MLflow.

Every candidate is scored on the same held-out test split; hyperparameters are chosen by
cross-validation on the training split only (`_search.py`), then refit on the whole training
split. The promotion gate (`_registry.py`) decides between the candidates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.cleaning import MissingValues
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._candidates import Candidate, _searched, _trivial
from conveyor.stages.training._checks import _check_sizes, _check_target
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import skewed_target
from conveyor.stages.training._metrics import Metric, beats, metric_for
from conveyor.stages.training._sample import TRAINED_ON_TAG, trained_on
from conveyor.stages.training._search import SearchTask, TrialLogger, cv_folds
from conveyor.stages.training._split import split_frame
from conveyor.stages.training._threads import ThreadPlan, plan_threads
from conveyor.stages.training._tracking import client, experiment_id, quiet, store_path

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CANDIDATES", "TRAIN_VERSION", "Candidate", "TrainResult", "TrainingSetInput", "config_digest", "load_split",
    "primary_metric", "train",
]

TRAIN_VERSION = 3
CANDIDATES = ("trivial", "baseline", "lightgbm")
"""In order of simplicity: on a tie, the simpler candidate wins."""
_LINEAR_BUDGET_SHARE = 0.25
_IMBALANCED = 0.25
"""A class with less than this share of the training rows makes class weighting a searched choice: the
untuned parameters with balanced weights are a trial of their own, and CV decides (measured on the
credit-default data, 22 % defaults: balanced weights, ROC AUC 0.7800 against 0.7807; for f1 they help).
Only for a metric that a decision threshold moves (f1, accuracy): weights cannot improve a ranking
(ROC AUC, PR AUC) and they skew probabilities (log loss), so there they would cost a trial for noise."""
_THRESHOLD_METRICS = ("f1", "accuracy")

@runtime_checkable
class TrainingSetInput(Protocol):
    """What training reads of the dataset stage's result (the rest is the artifact's file)."""

    @property
    def rows(self) -> int: ...


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
                ended = f", ended by {c.stopped_by}" if c.stopped_by else ""
                timing += f" + search {c.search_seconds:.1f}s: {c.trials} trials{pruned}{ended}{gain}"
            if c.averaged:
                timing += ", averaged with untuned"
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
        imbalanced = bool(np.bincount(y_train).min() / len(y_train) < _IMBALANCED) and metric.name in _THRESHOLD_METRICS
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
    x, y = search_rows(data.x_train, data.y_train, search_cfg.sample_rows, seed=config.training.seed)
    k = search_cfg.folds_for(len(y))
    if search_cfg.folds == "auto" and data.classes is not None:  # stratified: every class in every fold
        k = max(2, min(k, *_class_counts(y)))
    folds, cv = cv_folds(
        len(y), k, time_ordered=data.how == "time", y=y if data.classes is not None else None, seed=config.training.seed,
    )
    if len(y) < len(data.y_train):
        cv = f"{cv} on a sample of {len(y):,} of {len(data.y_train):,} training rows"
    mlflow_client = client(config, workspace)
    exp = experiment_id(mlflow_client, config, workspace, config.name)
    job = SearchTask(data.task, data.metric, x, y, data.n_classes, data.encoder, folds, data.plan, config.training.seed)
    logger = TrialLogger(mlflow_client, exp)
    try:
        return _train_candidates(config, workspace, training_set, data, job, logger, exp, cv)
    finally:
        logger.close()


def search_rows(x: np.ndarray, y: np.ndarray, limit: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows the search cross-validates on: all of them, or a seeded sample of `limit` rows in
    their order (time-ordered folds stay in time order); the final fit reads every row."""
    import numpy as np

    if len(y) <= limit:
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
    return x[keep], y[keep]


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
    if len(data.test_df) < _FEW_TEST_ROWS:
        notes.insert(0, f"only {len(data.test_df)} test rows: these scores, and the promotion gate that reads "
                        "them, are noise-sized; more rows or a larger training.test_size")
    for candidate in candidates.values():
        notes.extend(candidate.notes)
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


_FEW_TEST_ROWS = 30
"""Below this many test rows a score is mostly luck (a 4-row split of a 20-row file promoted a model)."""


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
