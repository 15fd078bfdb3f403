"""Train: a baseline and a gradient-boosted model, tracked in MLflow, on a Feast training set."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.cleaning import MissingValues
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import fit, make_baseline, make_lightgbm, score
from conveyor.stages.training._plots import log_plots
from conveyor.stages.training._split import split_frame
from conveyor.stages.training._tracking import client, experiment_id, pip_requirements, tracking

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.stages.training._model import ConveyorModel

__all__ = ["TRAIN_VERSION", "Candidate", "TrainResult", "TrainingSetInput", "load_split", "primary_metric", "train"]

TRAIN_VERSION = 2


@runtime_checkable
class TrainingSetInput(Protocol):
    """What training reads of the dataset stage's result (the rest is the artifact's file)."""

    @property
    def rows(self) -> int: ...


class Candidate(BaseModel):
    """One fitted model, logged as an MLflow run with its model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    model_id: str
    metrics: dict[str, float]
    fit_seconds: float


class TrainResult(Result):
    kind: ClassVar[str] = "trained"

    experiment_id: str
    primary_metric: str
    split: str
    train_rows: int
    test_rows: int
    candidates: dict[str, Candidate]
    best: str

    def summary(self) -> str:
        metric = self.primary_metric
        scores = ", ".join(f"{n} {metric}={c.metrics[metric]:.4f} ({c.fit_seconds:.1f}s)" for n, c in self.candidates.items())
        return f"{self.split} split {self.train_rows}/{self.test_rows}: {scores}"


def primary_metric(task: str, classes: list[Any] | None) -> str:
    if task == "regression":
        return "r2"
    return "roc_auc" if classes is not None and len(classes) == 2 else "accuracy"


def load_split(config: Config, training_set: Artifact[TrainingSetInput]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    import pandas as pd

    frame = pd.read_parquet(training_set.path)
    return split_frame(frame, config)


def _classes(config: Config, train: pd.DataFrame, test: pd.DataFrame) -> list[Any] | None:
    if config.schema.task != "classification":
        return None
    target = config.schema.target
    classes = sorted(train[target].dropna().unique().tolist(), key=str)
    if len(classes) < 2:
        raise TrainingError(
            f"the training split holds one class only ({classes}) of {target!r}; a classifier needs at least two"
        )
    if len(classes) == 2 and test[target].astype(str).nunique() < 2:
        raise TrainingError(
            f"the test split holds one class only of {target!r}, so ROC AUC cannot be measured; "
            "use more rows, or training.split: random (stratified)"
        )
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _check_sizes(train_df: pd.DataFrame, test_df: pd.DataFrame, training_set: Artifact[TrainingSetInput]) -> None:
    if len(train_df) < 10 or len(test_df) < 2:
        raise TrainingError(
            f"too few rows to train and test: {len(train_df)} train, {len(test_df)} test (from {training_set.path})"
        )


def train(config: Config, workspace: Workspace, training_set: Artifact[TrainingSetInput]) -> Artifact[TrainResult]:
    """Fit the baseline and LightGBM on the train split, score both on the test split, log both."""
    schema = config.schema
    train_df, test_df, how = load_split(config, training_set)
    _check_sizes(train_df, test_df, training_set)
    classes = _classes(config, train_df, test_df)
    metric = primary_metric(schema.task, classes)
    encoder = FeatureEncoder(schema.numeric(), schema.categorical(), MissingValues(config.cleaning.null_values))
    encoder.fit(train_df)
    x_train = encoder.transform(train_df)
    y_train: Any = train_df[schema.target].to_numpy()
    if classes is not None:
        index = {str(c): i for i, c in enumerate(classes)}
        y_train = [index[str(v)] for v in y_train]
    exp = experiment_id(client(workspace), workspace, config.name)
    candidates: dict[str, Candidate] = {}
    for name, estimator in (("baseline", make_baseline(config, encoder)), ("lightgbm", make_lightgbm(config))):
        started = time.perf_counter()
        fit(estimator, x_train, y_train, encoder)
        seconds = time.perf_counter() - started
        model = _conveyor_model(encoder, estimator, schema.task, classes)
        candidates[name] = _log_candidate(
            config, workspace, exp, name, model, seconds, (train_df, test_df, how), training_set, metric
        )
    best = max(candidates, key=lambda n: candidates[n].metrics[metric])
    result = TrainResult(
        experiment_id=exp, primary_metric=metric, split=how, train_rows=len(train_df), test_rows=len(test_df),
        candidates=candidates, best=best,
    )
    digest = hash_json({"training_set": training_set.digest, "training": config.section("training"),
                        "runs": {n: c.run_id for n, c in candidates.items()}, "version": TRAIN_VERSION})
    return Artifact("trained", workspace.mlflow_db, digest, result, {"training_set": training_set.digest})


def _conveyor_model(encoder: FeatureEncoder, estimator: Any, task: str, classes: list[Any] | None) -> ConveyorModel:
    from conveyor.stages.training._model import ConveyorModel

    model = ConveyorModel(encoder, estimator, task, classes)
    model.set_threads(1)  # logged for serving: one small batch at a time, where threads only spin
    return model


def _log_candidate(
    config: Config,
    workspace: Workspace,
    exp: str,
    name: str,
    model: ConveyorModel,
    seconds: float,
    split: tuple[pd.DataFrame, pd.DataFrame, str],
    training_set: Artifact[TrainingSetInput],
    metric: str,
) -> Candidate:
    """Score a fitted model on the test split and log it as one MLflow run."""
    schema = config.schema
    train_df, test_df, how = split
    outputs = model.predict_frame(test_df)
    scores = score(schema.task, test_df[schema.target], outputs, model.classes)
    with tracking(workspace) as mlflow:
        with mlflow.start_run(experiment_id=exp, run_name=name) as run:
            params = {f"model.{k}": v for k, v in model.estimator.get_params().items() if _plain(v)}
            mlflow.log_params({
                "model": name, "split": how, "test_size": config.training.test_size, "seed": config.training.seed,
                "train_rows": len(train_df), "test_rows": len(test_df),
                "features": ",".join(schema.features())[:6000], **params,
            })
            mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()} | {"fit_seconds": seconds})
            mlflow.set_tags({
                "conveyor.project": config.name,
                "conveyor.training_set": training_set.digest,
                "conveyor.clean_data": training_set.inputs.get("clean", ""),
                "conveyor.primary_metric": metric,
            })
            _log_datasets(mlflow, config, training_set, train_df, test_df)
            info = _log_model(mlflow, model, test_df[schema.features()].head(5))
            log_plots(mlflow, schema.task, test_df[schema.target].to_numpy(), outputs, model)
    return Candidate(run_id=run.info.run_id, model_id=info.model_id, metrics=scores, fit_seconds=round(seconds, 3))


def _log_datasets(
    mlflow: Any, config: Config, training_set: Artifact[TrainingSetInput], train_df: pd.DataFrame, test_df: pd.DataFrame
) -> None:
    from mlflow.data import from_pandas

    source = str(training_set.path)
    target = config.schema.target
    for context, frame in (("training", train_df), ("testing", test_df)):
        suffix = "train" if context == "training" else "test"
        dataset = from_pandas(frame, source=source, name=f"{config.name}-{suffix}", targets=target)
        mlflow.log_input(dataset, context=context)


def _log_model(mlflow: Any, model: ConveyorModel, example: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(None, example))
    return mlflow.pyfunc.log_model(
        name="model", python_model=model, signature=signature, input_example=example,
        pip_requirements=pip_requirements(),
    )


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
