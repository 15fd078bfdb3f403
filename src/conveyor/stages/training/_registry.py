"""The promotion gate and the champion: MLflow's model registry with aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._estimators import score
from conveyor.stages.training._tracking import quiet, use_workspace
from conveyor.stages.training._train import load_split

if TYPE_CHECKING:
    from conveyor.stages.training._model import ConveyorModel

__all__ = ["CHAMPION", "Champion", "load_champion", "promote"]

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    """The model a service answers with, and where it came from."""

    name: str
    version: str
    run_id: str
    model: ConveyorModel
    reference: str | None


def _champion_version(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _load(mlflow: Any, uri: str) -> ConveyorModel:
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def promote(config: Config, workspace: Workspace, trained: Artifact, training_set: Artifact) -> Artifact:
    """Register the best candidate; make it the champion only if it beats the baseline and the
    current champion on this test set by `promotion.min_improvement`.
    """
    meta = trained.meta
    metric, best = meta["primary_metric"], meta["best"]
    candidate = meta["candidates"][best]
    baseline = meta["candidates"]["baseline"]["metrics"][metric]
    score_new = candidate["metrics"][metric]
    margin = config.promotion.min_improvement
    mlflow = use_workspace(workspace)
    decision: dict[str, Any] = {"metric": metric, "candidate": best, "candidate_score": score_new, "baseline_score": baseline}
    with quiet():
        client = mlflow.MlflowClient()
        current = _champion_version(client, config.name)
        champion_score = None
        if current is not None:
            champion_score = _score_champion(mlflow, config, current, training_set)
        decision["champion_version"] = str(current.version) if current is not None else None
        decision["champion_score"] = champion_score
        reasons = []
        if best == "baseline" or score_new <= baseline + margin:
            reasons.append(f"{best} {metric}={score_new:.4f} does not beat the baseline's {baseline:.4f} by {margin}")
        if champion_score is not None and score_new <= champion_score + margin:
            reasons.append(
                f"{metric}={score_new:.4f} does not beat champion v{current.version}'s {champion_score:.4f} by {margin}"
            )
        if current is not None and current.run_id == candidate["run_id"]:
            reasons = ["this run is already the champion"]
        decision["promoted"] = not reasons
        decision["reasons"] = reasons
        version = str(current.version) if current is not None else None
        if not reasons:
            registered = mlflow.register_model(f"runs:/{candidate['run_id']}/model", config.name)
            version = str(registered.version)
            client.set_registered_model_alias(config.name, CHAMPION, version)
            client.set_model_version_tag(config.name, version, "conveyor.training_set", training_set.digest)
            client.set_model_version_tag(config.name, version, f"test_{metric}", f"{score_new:.6f}")
            _write_reference(mlflow, config, workspace, training_set, candidate["run_id"], version)
    decision["champion"] = version
    digest = hash_json({"trained": trained.digest, "decision": decision})
    return Artifact("promotion", workspace.mlflow_db, digest, {"trained": trained.digest}, decision)


def _score_champion(mlflow: Any, config: Config, current: Any, training_set: Artifact) -> float | None:
    """The current champion's primary metric on today's test set; None if it cannot score it."""
    from conveyor.stages.training._train import primary_metric

    _, test_df, _ = load_split(config, training_set)
    try:
        model = _load(mlflow, f"models:/{config.name}/{current.version}")
        outputs = model.predict_frame(test_df)
    except Exception:  # a champion from another schema cannot be compared: the gate ignores it
        return None
    metric = primary_metric(config.schema.task, model.classes)
    return score(config.schema.task, test_df[config.schema.target], outputs, model.classes).get(metric)


def _write_reference(mlflow: Any, config: Config, workspace: Workspace, training_set: Artifact, run_id: str, version: Any) -> None:
    """The features and predictions monitoring compares served traffic with: the whole training set."""
    import pandas as pd

    frame = pd.read_parquet(training_set.path)
    model = _load(mlflow, f"runs:/{run_id}/model")
    outputs = model.predict_frame(frame)
    reference = frame[[*config.schema.features(), config.schema.target]].copy()
    for column, values in outputs.items():
        reference[f"__{column}"] = values
    workspace.ensure(workspace.reference)
    path = workspace.reference_file(config.name, version)
    reference.to_parquet(path, index=False)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifact(str(path), artifact_path="reference")


def load_champion(config: Config, workspace: Workspace, threads: int = 1) -> Champion:
    """The model behind `models:/<name>@champion`, ready for low-latency predictions."""
    mlflow = use_workspace(workspace)
    if not workspace.mlflow_db.exists():
        raise ServingError(f"no model registry at {workspace.mlflow_db}; run `conveyor run` first")
    with quiet():
        client = mlflow.MlflowClient()
        current = _champion_version(client, config.name)
        if current is None:
            raise ServingError(
                f"no model {config.name!r} has the alias @{CHAMPION} in {workspace.mlflow_db}; "
                "run `conveyor run` (a model is promoted only when it beats the baseline)"
            )
        try:
            model = _load(mlflow, f"models:/{config.name}@{CHAMPION}")
        except Exception as exc:
            raise ServingError(f"cannot load models:/{config.name}@{CHAMPION}: {exc}") from exc
    model.set_threads(threads)
    path = workspace.reference_file(config.name, current.version)
    return Champion(config.name, str(current.version), current.run_id, model, str(path) if path.exists() else None)


