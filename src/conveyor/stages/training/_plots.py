"""Plots logged with each candidate: test predictions and feature importance.

matplotlib's object API only (`Figure`), so nothing touches pyplot's global state or the
process's backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.stages.training._model import ConveyorModel

__all__ = ["log_plots"]


def log_plots(mlflow: Any, task: str, y_true: Any, outputs: dict[str, list[Any]], model: ConveyorModel) -> None:
    """Log `plots/test_predictions.png` and, for tree models, `plots/feature_importance.png`."""
    mlflow.log_figure(_test_predictions(task, y_true, outputs, model), "plots/test_predictions.png")
    importances = getattr(model.estimator, "feature_importances_", None)
    if importances is not None:
        mlflow.log_figure(_importance(importances, model.features), "plots/feature_importance.png")


def _test_predictions(task: str, y_true: Any, outputs: dict[str, list[Any]], model: ConveyorModel) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    if task == "regression":
        pred = np.asarray(outputs["prediction"], dtype=float)
        truth = np.asarray(y_true, dtype=float)
        ax.scatter(truth, pred, s=4, alpha=0.3)
        low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
        ax.plot([low, high], [low, high], color="black", lw=1)
        ax.set(xlabel="actual", ylabel="predicted", title="Test set: predicted vs actual")
    elif "probability" in outputs and model.classes and len(model.classes) == 2:
        from sklearn.metrics import RocCurveDisplay

        positive = [str(v) == str(model.classes[1]) for v in y_true]
        RocCurveDisplay.from_predictions(positive, outputs["probability"], ax=ax)
        ax.set_title("Test set: ROC curve")
    return fig


def _importance(importances: Any, features: list[str]) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    order = np.argsort(importances)[-20:]
    fig = Figure(figsize=(6, 0.3 * len(order) + 1))
    ax = fig.subplots()
    ax.barh([features[i] for i in order], np.asarray(importances)[order])
    ax.set_title("Feature importance (splits)")
    fig.tight_layout()
    return fig
