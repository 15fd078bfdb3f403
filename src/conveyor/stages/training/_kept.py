"""A candidate kept out of `@champion` because the gate could not compare it fairly: registered
as a version without the alias, so that `conveyor models promote VERSION` can still choose it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.workspace import Workspace
from conveyor.stages.training._tracking import tracking
from conveyor.stages.training._train import TrainingSetInput, TrainResult
from conveyor.stages.training._versions import _unmoved

__all__ = ["register_kept"]


def register_kept(
    mlflow_client: Any, config: Config, workspace: Workspace, trained: Artifact[TrainResult], best: str,
    training_set: Artifact[TrainingSetInput], *, read: str | None, write_reference: Callable[..., None],
) -> str:
    """Register a candidate the gate could not compare fairly, WITHOUT moving `@champion`, so that
    `conveyor models promote VERSION` can make it champion by hand. Called under the registry lock;
    `write_reference` writes the version's monitoring reference, as for a promoted one."""
    from mlflow.exceptions import MlflowException

    candidate = trained.result.candidates[best]
    assert candidate.model_id is not None
    _unmoved(mlflow_client, config.name, read)
    try:
        mlflow_client.get_registered_model(config.name)
    except MlflowException:
        mlflow_client.create_registered_model(config.name)
    with tracking(config, workspace):
        created = mlflow_client.create_model_version(
            config.name, source=f"models:/{candidate.model_id}", run_id=candidate.run_id, model_id=candidate.model_id
        )
    version = str(created.version)
    write_reference(mlflow_client, config, workspace, training_set, candidate.run_id, candidate.model_id, version)
    run = mlflow_client.get_run(candidate.run_id)
    tags = {
        "conveyor.candidate": best,
        "conveyor.training_set": training_set.digest,
        "conveyor.feature_service": run.data.tags.get("conveyor.feature_service", ""),
        "conveyor.config": run.data.tags.get("conveyor.config", ""),
        "conveyor.run": candidate.run_id,
        "conveyor.primary_metric": trained.result.primary_metric,
        "conveyor.gate": "kept the champion: no fair comparison",
        **{f"test_{k}": f"{v:.6f}" for k, v in candidate.metrics.items()},
    }
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(config.name, version, key, value)
    return version
