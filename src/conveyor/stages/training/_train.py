"""Train: a baseline and a gradient-boosted model, tracked in MLflow, on a Feast training set."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import fit, make_baseline, make_lightgbm, score
from conveyor.stages.training._split import split_frame
from conveyor.stages.training._tracking import experiment_id, pip_requirements, quiet, use_workspace

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TRAIN_VERSION", "primary_metric", "train"]

TRAIN_VERSION = 1


def primary_metric(task: str, classes: list[Any] | None) -> str:
    if task == "regression":
        return "r2"
    return "roc_auc" if classes is not None and len(classes) == 2 else "accuracy"


def load_split(config: Config, training_set: Artifact) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    import pandas as pd

    frame = pd.read_parquet(training_set.path)
    return split_frame(frame, config)


def _classes(config: Config, train: pd.DataFrame) -> list[Any] | None:
    if config.schema.task != "classification":
        return None
    classes = sorted(train[config.schema.target].dropna().unique().tolist(), key=str)
    if len(classes) < 2:
        raise TrainingError(
            f"the training split holds one class only ({classes}) of {config.schema.target!r}; "
            "a classifier needs at least two"
        )
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _plots(mlflow: Any, task: str, y_true: Any, outputs: dict[str, list[Any]], model: Any, features: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 5))
    if task == "regression":
        pred = np.asarray(outputs["prediction"])
        ax.scatter(y_true, pred, s=4, alpha=0.3)
        low, high = float(min(np.min(y_true), pred.min())), float(max(np.max(y_true), pred.max()))
        ax.plot([low, high], [low, high], color="black", lw=1)
        ax.set(xlabel="actual", ylabel="predicted", title="Test set: predicted vs actual")
    elif "probability" in outputs and model.classes and len(model.classes) == 2:
        from sklearn.metrics import RocCurveDisplay

        positive = [str(v) == str(model.classes[1]) for v in y_true]
        RocCurveDisplay.from_predictions(positive, outputs["probability"], ax=ax)
        ax.set_title("Test set: ROC curve")
    mlflow.log_figure(fig, "plots/test_predictions.png")
    plt.close(fig)
    importances = getattr(model.estimator, "feature_importances_", None)
    if importances is not None:
        order = np.argsort(importances)[-20:]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1))
        ax.barh([features[i] for i in order], np.asarray(importances)[order])
        ax.set_title("Feature importance (splits)")
        fig.tight_layout()
        mlflow.log_figure(fig, "plots/feature_importance.png")
        plt.close(fig)


def train(config: Config, workspace: Workspace, training_set: Artifact) -> Artifact:
    """Fit the baseline and LightGBM on the train split, score both on the test split, log both."""
    with quiet():  # MLflow inspects PythonModel subclasses as they are defined
        from conveyor.stages.training._model import ConveyorModel

    schema = config.schema
    train_df, test_df, how = load_split(config, training_set)
    if len(train_df) < 10 or len(test_df) < 2:
        raise TrainingError(
            f"too few rows to train and test: {len(train_df)} train, {len(test_df)} test "
            f"(from {training_set.path})"
        )
    classes = _classes(config, train_df)
    metric = primary_metric(schema.task, classes)
    features = schema.features()
    encoder = FeatureEncoder(schema.numeric(), schema.categorical(), config.cleaning.null_values).fit(train_df)
    x_train = encoder.transform(train_df)
    y_train = train_df[schema.target].to_numpy()
    if classes is not None:
        index = {str(c): i for i, c in enumerate(classes)}
        y_train = [index[str(v)] for v in y_train]

    mlflow = use_workspace(workspace)
    with quiet():
        exp = experiment_id(mlflow, workspace, config.name)
    digest = hash_json({"training_set": training_set.digest, "training": config.section("training"), "version": TRAIN_VERSION})
    candidates: dict[str, dict[str, Any]] = {}
    with quiet():
        import mlflow.data
        from mlflow.models import infer_signature

        dataset = mlflow.data.from_pandas(
            train_df, source=str(training_set.path), name=f"{config.name}-train", targets=schema.target
        )
        test_data = mlflow.data.from_pandas(
            test_df, source=str(training_set.path), name=f"{config.name}-test", targets=schema.target
        )
        for name, estimator in (("baseline", make_baseline(config, encoder)), ("lightgbm", make_lightgbm(config))):
            started = time.perf_counter()
            fit(estimator, x_train, y_train, encoder)
            seconds = time.perf_counter() - started
            model = ConveyorModel(encoder, estimator, schema.task, classes)
            model.set_threads(1)  # logged for serving: one row at a time, where threads only spin
            outputs = model.predict_frame(test_df)
            scores = score(schema.task, test_df[schema.target], outputs, classes)
            with mlflow.start_run(experiment_id=exp, run_name=f"{name}") as run:
                params = {f"model.{k}": v for k, v in estimator.get_params().items() if _plain(v)}
                mlflow.log_params(
                    {
                        "model": name,
                        "split": how,
                        "test_size": config.training.test_size,
                        "seed": config.training.seed,
                        "train_rows": len(train_df),
                        "test_rows": len(test_df),
                        "features": ",".join(features)[:6000],
                        **params,
                    }
                )
                mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()} | {"fit_seconds": seconds})
                mlflow.set_tags(
                    {
                        "conveyor.project": config.name,
                        "conveyor.training_set": training_set.digest,
                        "conveyor.clean_data": training_set.inputs.get("clean", ""),
                        "conveyor.primary_metric": metric,
                    }
                )
                mlflow.log_input(dataset, context="training")
                mlflow.log_input(test_data, context="testing")
                example = test_df[features].head(5)
                signature = infer_signature(example, model.predict(None, example))
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=model,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(),
                )
                _plots(mlflow, schema.task, test_df[schema.target].to_numpy(), outputs, model, encoder.columns)
            candidates[name] = {"run_id": run.info.run_id, "metrics": scores, "fit_seconds": round(seconds, 3)}
    best = max(("lightgbm", "baseline"), key=lambda n: candidates[n]["metrics"].get(metric, float("-inf")))
    meta = {
        "experiment": config.name,
        "experiment_id": exp,
        "primary_metric": metric,
        "split": how,
        "train_rows": len(train_df),
        "test_rows": len(test_df),
        "candidates": candidates,
        "best": best,
    }
    return Artifact("trained", workspace.mlflow_db, digest, {"training_set": training_set.digest}, meta)


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
