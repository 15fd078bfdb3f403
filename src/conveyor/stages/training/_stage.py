"""The training stages: `train` (candidates, tracked) and `promote` (the gate, the champion)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace
from conveyor.stages.training._registry import PromotionDecision
from conveyor.stages.training._train import TRAIN_VERSION, TrainingSetInput, TrainResult

__all__ = ["PROMOTE", "PROMOTE_VERSION", "TRAIN"]

PROMOTE_VERSION = 4


@runtime_checkable
class FeatureServiceInput(Protocol):
    """What training reads of the features stage: the Feast feature service a model reads."""

    def service_for(self, model: str | None) -> str: ...


def _train(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[TrainResult]:
    from conveyor.stages.training._train import train

    service = upstream.get("features", FeatureServiceInput).result.service_for(config.model)
    dataset = upstream.get("dataset", TrainingSetInput)
    return train(config, workspace, dataset, feature_service=service)


def _promote(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[PromotionDecision]:
    from conveyor.stages.training._registry import promote

    dataset = upstream.get("dataset", TrainingSetInput)
    return promote(config, workspace, upstream.get("train", TrainResult), dataset)


def _runs_exist(config: Config, workspace: Workspace, artifact: Artifact[TrainResult]) -> str | None:
    """A cached `train` is valid while every candidate's run and model files are still there
    (in `mlflow.db` and `mlartifacts/`, or on the MLflow server)."""
    from mlflow.exceptions import MlflowException

    from conveyor.stages.training._tracking import client, model_files_exist, where

    mlflow_client = client(config, workspace)
    for name, candidate in artifact.result.candidates.items():
        try:
            run = mlflow_client.get_run(candidate.run_id)
        except MlflowException:
            return f"the {name} run {candidate.run_id} is gone from {where(config, workspace)}"
        if run.info.lifecycle_stage != "active":
            return f"the {name} run {candidate.run_id} was deleted"
        if candidate.model_id is None:
            continue
        try:
            missing = model_files_exist(mlflow_client, config, workspace, candidate.model_id)
        except MlflowException:
            return f"the {name} model {candidate.model_id} is gone from {where(config, workspace)}"
        if missing is not None:
            return f"the {name} model's files are gone from {missing}"
    return None


def _alias_holds(config: Config, workspace: Workspace, artifact: Artifact[PromotionDecision]) -> str | None:
    """A cached `promote` is valid while @champion still points where the decision left it."""
    from conveyor.stages.training._registry import CHAMPION, champion_version
    from conveyor.stages.training._tracking import client

    current = champion_version(client(config, workspace), config.name)
    now = None if current is None else str(current.version)
    if now != artifact.result.champion:
        was = "no champion" if artifact.result.champion is None else f"v{artifact.result.champion}"
        return f"@{CHAMPION} moved since this decision ({was} -> {now and 'v' + now or 'none'})"
    return None


TRAIN: Stage[TrainResult] = Stage(
    name="train",
    needs=("features", "dataset"),
    sections=("schema", "cleaning", "training"),
    version=TRAIN_VERSION,
    result=TrainResult,
    run=_train,
    describe="trivial, linear and LightGBM, searched by CV (Optuna, MLflow)",
    help="Search and fit the candidates (trivial, linear, LightGBM) on the training split; track them in MLflow.",
    still_valid=_runs_exist,
)

PROMOTE: Stage[PromotionDecision] = Stage(
    name="promote",
    needs=("train", "dataset"),
    sections=("promotion",),
    version=PROMOTE_VERSION,
    result=PromotionDecision,
    run=_promote,
    describe="gate + @champion (MLflow registry)",
    help="Register the best model; move @champion only if it beats the trivial model and the champion.",
    still_valid=_alias_holds,
)
