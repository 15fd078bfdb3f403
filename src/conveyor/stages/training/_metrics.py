"""Metrics, which way is better, and scoring any model on any split the same way.

Every comparison in training (the search, the choice of the best candidate, the promotion
gate) goes through `beats`, so a lower-is-better metric (rmse, mae, rmsle, log_loss) is never
compared the wrong way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import TrainingError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.stages.training._model import ConveyorModel

__all__ = [
    "METRICS", "Metric", "beats", "default_metric", "evaluate", "gain", "metric_for", "regression_scores",
    "classification_scores", "class_index", "bootstrap_share", "fresh_score", "score_one",
]


@dataclass(frozen=True)
class Metric:
    name: str
    task: str
    greater_is_better: bool

    @property
    def direction(self) -> str:
        return "higher is better" if self.greater_is_better else "lower is better"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("r2", "regression", True),
        Metric("rmse", "regression", False),
        Metric("mae", "regression", False),
        Metric("rmsle", "regression", False),
        Metric("roc_auc", "classification", True),
        Metric("pr_auc", "classification", True),
        Metric("log_loss", "classification", False),
        Metric("f1", "classification", True),
        Metric("accuracy", "classification", True),
    )
}


def default_metric(task: str, n_classes: int | None) -> str:
    if task == "regression":
        return "r2"
    return "roc_auc" if n_classes == 2 else "accuracy"


def metric_for(configured: str | None, task: str, n_classes: int | None) -> Metric:
    """The primary metric: `training.metric`, checked against the task, or the task's default."""
    name = configured or default_metric(task, n_classes)
    metric = METRICS[name]
    if metric.task != task:
        fits = ", ".join(m.name for m in METRICS.values() if m.task == task)
        raise TrainingError(f"training.metric: {name!r} is a {metric.task} metric; for {task} use one of {fits}")
    return metric


def beats(metric: str, a: float, b: float, margin: float = 0.0) -> bool:
    """True when score `a` is better than score `b` by more than `margin`, in the metric's direction."""
    return gain(metric, a, b) > margin


def gain(metric: str, a: float, b: float) -> float:
    """How much better `a` is than `b` (positive: better), in the metric's units."""
    return a - b if METRICS[metric].greater_is_better else b - a


def regression_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics

    scores = {
        "r2": float(metrics.r2_score(truth, pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, pred))),
        "mae": float(metrics.mean_absolute_error(truth, pred)),
    }
    if len(truth) and float(np.min(truth)) >= 0:  # rmsle is defined for non-negative targets only
        scores["rmsle"] = float(np.sqrt(metrics.mean_squared_log_error(truth, np.clip(pred, 0, None))))
    return scores


def classification_scores(truth: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """`truth`: class indices 0..k-1; `proba`: n x k probabilities. Positive class (binary): index 1."""
    import numpy as np
    from sklearn import metrics

    k = proba.shape[1]
    labels = proba.argmax(axis=1)
    scores: dict[str, float] = {"accuracy": float(metrics.accuracy_score(truth, labels))}
    present = len(np.unique(truth))
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    scores["log_loss"] = float(metrics.log_loss(truth, clipped / clipped.sum(axis=1, keepdims=True), labels=list(range(k))))
    if k == 2:
        scores["f1"] = float(metrics.f1_score(truth, labels, zero_division=0.0))
        if present == 2:
            scores["roc_auc"] = float(metrics.roc_auc_score(truth, proba[:, 1]))
            scores["pr_auc"] = float(metrics.average_precision_score(truth, proba[:, 1]))
    else:
        scores["f1"] = float(metrics.f1_score(truth, labels, average="macro", zero_division=0.0))
        if present == k:
            scores["roc_auc"] = float(metrics.roc_auc_score(truth, proba, multi_class="ovr", labels=list(range(k))))
            onehot = np.eye(k)[truth]
            scores["pr_auc"] = float(metrics.average_precision_score(onehot, proba, average="macro"))
    return scores


def class_index(values: Any, classes: list[Any]) -> np.ndarray:
    """Labels to indices into `classes` (compared as text); an unknown label is an error."""
    import numpy as np

    index = {str(c): i for i, c in enumerate(classes)}
    try:
        return np.asarray([index[str(v)] for v in values], dtype=np.int64)
    except KeyError as exc:
        raise TrainingError(f"the label {exc.args[0]!r} is not one of the model's classes {classes}") from None


def evaluate(model: ConveyorModel, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """Every metric of a fitted model (any candidate, or a champion loaded back) on a split."""
    import numpy as np

    matrix = model.encoder.transform(frame)
    if model.task == "regression":
        return regression_scores(frame[target].to_numpy(dtype=float), np.asarray(model.estimator.predict(matrix), dtype=float))
    assert model.classes is not None
    truth = class_index(frame[target].tolist(), model.classes)
    return classification_scores(truth, np.asarray(model.estimator.predict_proba(matrix), dtype=float))


def fresh_score(model: ConveyorModel, rows: Sequence[Mapping[str, Any]], truth: Sequence[Any], metric: str) -> float:
    """One metric of a model on labeled served rows (model inputs as logged, cleaned at serving)."""
    import numpy as np

    matrix = model.encoder.transform_records([dict(r) for r in rows], cleaned=True)
    if model.task == "regression":
        return score_one(metric, np.asarray(truth, dtype=float), np.asarray(model.estimator.predict(matrix), dtype=float))
    assert model.classes is not None
    return score_one(metric, class_index(truth, model.classes), np.asarray(model.estimator.predict_proba(matrix)))


def score_one(metric: str, truth: np.ndarray, output: np.ndarray) -> float:
    """One metric, fast: `output` is predictions (regression) or n x k probabilities."""
    import numpy as np
    from sklearn import metrics

    if metric == "r2":
        return float(metrics.r2_score(truth, output))
    if metric == "rmse":
        return float(np.sqrt(np.mean((truth - output) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(truth - output)))
    if metric == "rmsle":
        return float(np.sqrt(np.mean((np.log1p(truth) - np.log1p(np.clip(output, 0, None))) ** 2)))
    k = output.shape[1]
    if metric == "accuracy":
        return float(np.mean(output.argmax(axis=1) == truth))
    if k == 2 and metric in ("roc_auc", "pr_auc"):
        if len(np.unique(truth)) < 2:
            return float("nan")
        if metric == "roc_auc":
            return binary_auc(truth, output[:, 1])
        return float(metrics.average_precision_score(truth, output[:, 1]))
    if metric == "log_loss":
        picked = np.clip(output[np.arange(len(truth)), truth], 1e-15, 1.0)
        return float(-np.mean(np.log(picked)))
    scores = classification_scores(truth, output)
    return scores.get(metric, float("nan"))


def binary_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of class 1 by the rank-sum (Mann-Whitney) formula, ties at their mean rank: the
    value `roc_auc_score` gives, without its input checks (a tenth of the time at 50,000 rows,
    which 400 bootstrap scorings notice)."""
    import numpy as np
    from scipy.stats import rankdata

    positive = np.asarray(truth) == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


_BOOTSTRAP_ROWS = 10_000


def bootstrap_share(
    metric: str, truth: np.ndarray, candidate: np.ndarray, reference: np.ndarray, *, seed: int, rounds: int = 200
) -> float:
    """Share of paired bootstrap resamples of the test split on which `candidate` beats `reference`.

    A model that wins on the test split by chance (a random target, a tiny file) wins on about
    half of the resamples; one that is really better, on nearly all. Past `_BOOTSTRAP_ROWS` test
    rows each resample draws that many (an m-out-of-n bootstrap: a little more cautious about a
    small lead, and 200 resamples of a 60,000-row split no longer take 5 s a candidate; against
    the trivial model, the only use, a real model's lead is never small).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n, wins, counted = len(truth), 0, 0
    m = min(n, _BOOTSTRAP_ROWS)
    for _ in range(rounds):
        rows = rng.integers(0, n, m)
        a, b = score_one(metric, truth[rows], candidate[rows]), score_one(metric, truth[rows], reference[rows])
        if np.isnan(a) or np.isnan(b):
            continue
        counted += 1
        wins += beats(metric, a, b)
    return wins / counted if counted else 0.0
