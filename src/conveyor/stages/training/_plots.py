"""Plots logged with each candidate, for the MLflow UI.

Regression: predicted vs actual, residuals. Classification: ROC, precision-recall,
calibration, confusion matrix. Every model: feature importance (trees: split gain; linear:
|coefficient| is not comparable across one-hot columns, so only trees), the search history.
matplotlib's object API only (`Figure`), so nothing touches pyplot's global state or the
process's backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np

    from conveyor.stages.training._metrics import Metric
    from conveyor.stages.training._model import ConveyorModel

    Outputs: TypeAlias = Mapping[str, Sequence[Any] | np.ndarray]  # a model's outputs by name (prediction, probability)

__all__ = ["log_plots"]


def log_plots(
    mlflow: Any,
    task: str,
    y_true: Any,
    outputs: Outputs,
    model: ConveyorModel,
    history: list[tuple[int, float | None, str]] | None = None,
    metric: Metric | None = None,
) -> None:
    """Log the plots of one candidate under `plots/` of the active run."""
    figures: dict[str, Any] = {}
    if task == "regression":
        figures["test_predictions"] = _predicted_vs_actual(y_true, outputs)
        figures["residuals"] = _residuals(y_true, outputs)
    elif model.classes:
        figures |= _classification(y_true, outputs, model)
    importances = getattr(model.estimator, "feature_importances_", None)
    if importances is not None:
        figures["feature_importance"] = _importance(importances, model.features)
    if history and metric is not None:
        figures["search_history"] = _history(history, metric)
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}.png")


def _figure(width: float = 5.5, height: float = 5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _predicted_vs_actual(y_true: Any, outputs: Outputs) -> Any:
    import numpy as np

    pred, truth = np.asarray(outputs["prediction"], dtype=float), np.asarray(y_true, dtype=float)
    fig = _figure()
    ax = fig.subplots()
    ax.scatter(truth, pred, s=4, alpha=0.3)
    low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([low, high], [low, high], color="black", lw=1)
    ax.set(xlabel="actual", ylabel="predicted", title="Test set: predicted vs actual")
    return fig


def _residuals(y_true: Any, outputs: Outputs) -> Any:
    import numpy as np

    pred, truth = np.asarray(outputs["prediction"], dtype=float), np.asarray(y_true, dtype=float)
    residual = truth - pred
    fig = _figure(10, 4.5)
    left, right = fig.subplots(1, 2)
    left.scatter(pred, residual, s=4, alpha=0.3)
    left.axhline(0, color="black", lw=1)
    left.set(xlabel="predicted", ylabel="actual - predicted", title="Test set: residuals")
    right.hist(residual, bins=50)
    right.set(xlabel="actual - predicted", ylabel="rows", title="Residual distribution")
    fig.tight_layout()
    return fig


def _classification(y_true: Any, outputs: Outputs, model: ConveyorModel) -> dict[str, Any]:
    import numpy as np
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    assert model.classes is not None
    labels = [str(c) for c in model.classes]
    truth = [str(v) for v in y_true]
    predicted = [str(v) for v in outputs["prediction"]]
    figures: dict[str, Any] = {}
    fig = _figure()
    ConfusionMatrixDisplay.from_predictions(truth, predicted, labels=labels, ax=fig.subplots(), colorbar=False)
    fig.axes[0].set_title("Test set: confusion matrix")
    figures["confusion_matrix"] = fig
    if len(labels) == 2 and "probability" in outputs and len(set(truth)) == 2:
        positive = np.asarray([t == labels[1] for t in truth])
        proba = np.asarray(outputs["probability"], dtype=float)
        for name, display in (("roc_curve", RocCurveDisplay), ("pr_curve", PrecisionRecallDisplay)):
            fig = _figure()
            display.from_predictions(positive, proba, ax=fig.subplots())
            figures[name] = fig
        fig = _figure()
        CalibrationDisplay.from_predictions(positive, proba, n_bins=10, ax=fig.subplots())
        fig.axes[0].set_title("Test set: calibration")
        figures["calibration"] = fig
    return figures


def _importance(importances: Any, features: list[str]) -> Any:
    import numpy as np

    order = np.argsort(importances)[-20:]
    fig = _figure(6, 0.3 * len(order) + 1)
    ax = fig.subplots()
    ax.barh([features[i] for i in order], np.asarray(importances)[order])
    ax.set_title("Feature importance (splits)")
    fig.tight_layout()
    return fig


def _history(history: list[tuple[int, float | None, str]], metric: Metric) -> Any:
    import math

    fig = _figure(7, 4)
    ax = fig.subplots()
    done = [(n, v) for n, v, state in history if state == "COMPLETE" and v is not None and not math.isnan(v)]
    pruned = [(n, v) for n, v, state in history if state == "PRUNED" and v is not None and not math.isnan(v)]
    if done:
        ax.scatter([n for n, _ in done], [v for _, v in done], s=14, label="trial (CV)")
        best: list[float] = []
        for _, value in done:
            better = not best or (value > best[-1] if metric.greater_is_better else value < best[-1])
            best.append(value if better else best[-1])
        ax.step([n for n, _ in done], best, where="post", color="black", lw=1, label="best so far")
    if pruned:
        ax.scatter([n for n, _ in pruned], [v for _, v in pruned], s=14, marker="x", color="grey", label="pruned")
    ax.set(xlabel="trial", ylabel=f"CV {metric.name} ({metric.direction})", title="Hyperparameter search")
    ax.legend(loc="best")
    return fig
