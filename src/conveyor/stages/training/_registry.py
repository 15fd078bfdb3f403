"""The promotion gate and the champion: MLflow's model registry with aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.training._estimators import score
from conveyor.stages.training._tracking import client, local_model_path, tracking
from conveyor.stages.training._train import TrainingSetInput, TrainResult, load_split, primary_metric

if TYPE_CHECKING:
    from conveyor.stages.training._model import ConveyorModel

__all__ = [
    "CHAMPION", "Champion", "PromotionDecision", "VersionInfo", "champion_version", "describe_version", "load_champion",
    "promote",
]

CHAMPION = "champion"


class PromotionDecision(Result):
    """What the gate decided, with the figures it decided on."""

    kind: ClassVar[str] = "promotion"

    metric: str
    candidate: str
    candidate_score: float
    baseline_score: float
    champion_version: str | None
    """The champion before this decision."""
    champion_score: float | None
    """That champion re-scored on this test split (None: no champion, or it could not be scored)."""
    champion_note: str | None = None
    """Why the previous champion could not be re-scored, when it could not."""
    promoted: bool
    reasons: list[str]
    champion: str | None
    """The champion after this decision."""

    def summary(self) -> str:
        if self.promoted:
            return f"champion = v{self.champion} ({self.metric}={self.candidate_score:.4f})"
        return "not promoted: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class Champion:
    """The model behind `models:/<name>@champion`, and where it came from."""

    name: str
    version: str
    run_id: str
    model: ConveyorModel
    reference: str | None


def champion_version(mlflow_client: Any, name: str) -> Any | None:
    """The model version the `champion` alias points to, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def model_id_of(version: Any) -> str:
    """The logged model behind a registered version (its source is `models:/<model id>`)."""
    if getattr(version, "model_id", None):
        return str(version.model_id)
    source = str(version.source)
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/")
    raise TrainingError(f"model version {version.version} has no logged model id (source {source!r})")


def _load(mlflow_client: Any, workspace: Workspace, model_id: str) -> ConveyorModel:
    import mlflow.pyfunc

    path = local_model_path(mlflow_client, workspace, model_id)
    model: ConveyorModel = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
    return model


def promote(
    config: Config, workspace: Workspace, trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput]
) -> Artifact[PromotionDecision]:
    """Register the best candidate; make it the champion only if it beats the baseline and the
    current champion on this test set by `promotion.min_improvement`.
    """
    result = trained.result
    metric, best = result.primary_metric, result.best
    candidate = result.candidates[best]
    score_new = candidate.metrics[metric]
    baseline = result.candidates["baseline"].metrics[metric]
    margin = config.promotion.min_improvement
    mlflow_client = client(workspace)
    current = champion_version(mlflow_client, config.name)
    champion_score, note = (None, None) if current is None else _score_champion(mlflow_client, config, workspace, current, training_set)
    reasons = []
    if best == "baseline" or score_new <= baseline + margin:
        reasons.append(f"{best} {metric}={score_new:.4f} does not beat the baseline's {baseline:.4f} by {margin}")
    if current is not None and champion_score is not None and score_new <= champion_score + margin:
        reasons.append(f"{metric}={score_new:.4f} does not beat champion v{current.version}'s {champion_score:.4f} by {margin}")
    if current is not None and current.run_id == candidate.run_id:
        reasons = ["this run is already the champion"]
    version = str(current.version) if current is not None else None
    if not reasons:
        version = _register(mlflow_client, config, workspace, candidate.run_id, candidate.model_id, training_set)
        client_tags = {"conveyor.training_set": training_set.digest, f"test_{metric}": f"{score_new:.6f}"}
        for key, value in client_tags.items():
            mlflow_client.set_model_version_tag(config.name, version, key, value)
    decision = PromotionDecision(
        metric=metric, candidate=best, candidate_score=score_new, baseline_score=baseline,
        champion_version=str(current.version) if current is not None else None, champion_score=champion_score,
        champion_note=note, promoted=not reasons, reasons=reasons, champion=version,
    )
    digest = hash_json({"trained": trained.digest, "decision": decision.model_dump(mode="json")})
    return Artifact("promotion", workspace.mlflow_db, digest, decision, {"trained": trained.digest})


def _register(
    mlflow_client: Any, config: Config, workspace: Workspace, run_id: str, model_id: str,
    training_set: Artifact[TrainingSetInput],
) -> str:
    """A new registered version of the run's model, the champion alias on it, its reference."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(config.name)
    except MlflowException:
        mlflow_client.create_registered_model(config.name)
    with tracking(workspace):  # the registry resolves the logged model through the tracking URI
        created = mlflow_client.create_model_version(
            config.name, source=f"models:/{model_id}", run_id=run_id, model_id=model_id
        )
    version = str(created.version)
    _write_reference(mlflow_client, config, workspace, training_set, run_id, model_id, version)
    mlflow_client.set_registered_model_alias(config.name, CHAMPION, version)
    return version


def _score_champion(
    mlflow_client: Any, config: Config, workspace: Workspace, current: Any, training_set: Artifact[TrainingSetInput]
) -> tuple[float | None, str | None]:
    """The current champion's primary metric on today's test set, or None and why not."""
    _, test_df, _ = load_split(config, training_set)
    try:
        model = _load(mlflow_client, workspace, model_id_of(current))
        outputs = model.predict_frame(test_df)
    except Exception as exc:  # a champion from another schema cannot be compared: say why, in the decision
        return None, f"champion v{current.version} could not score this test split: {type(exc).__name__}: {exc}"
    metric = primary_metric(config.schema.task, model.classes)
    value = score(config.schema.task, test_df[config.schema.target], outputs, model.classes).get(metric)
    return value, None if value is not None else f"champion v{current.version} has no {metric} on this split"


def _write_reference(
    mlflow_client: Any, config: Config, workspace: Workspace, training_set: Artifact[TrainingSetInput],
    run_id: str, model_id: str, version: str,
) -> None:
    """The features and predictions monitoring compares served traffic with: the whole training set."""
    import pandas as pd

    frame = pd.read_parquet(training_set.path)
    outputs = _load(mlflow_client, workspace, model_id).predict_frame(frame)
    reference = frame[[*config.schema.features(), config.schema.target]].copy()
    for column, values in outputs.items():
        reference[f"__{column}"] = values
    workspace.ensure(workspace.reference)
    path = workspace.reference_file(config.name, version)
    reference.to_parquet(path, index=False)
    mlflow_client.log_artifact(run_id, str(path), artifact_path="reference")


def load_champion(config: Config, workspace: Workspace, threads: int = 1) -> Champion:
    """The model behind `models:/<name>@champion`, ready for low-latency predictions."""
    if not workspace.mlflow_db.exists():
        raise TrainingError(f"no model registry at {workspace.mlflow_db}; run `conveyor run` first")
    mlflow_client = client(workspace)
    current = champion_version(mlflow_client, config.name)
    if current is None:
        raise TrainingError(
            f"no model {config.name!r} has the alias @{CHAMPION} in {workspace.mlflow_db}; "
            "run `conveyor run` (a model is promoted only when it beats the baseline)"
        )
    try:
        model = _load(mlflow_client, workspace, model_id_of(current))
    except Exception as exc:
        raise TrainingError(f"cannot load models:/{config.name}@{CHAMPION} (v{current.version}): {exc}") from exc
    model.set_threads(threads)
    path = workspace.reference_file(config.name, current.version)
    return Champion(config.name, str(current.version), current.run_id, model, str(path) if path.exists() else None)



@dataclass(frozen=True)
class VersionInfo:
    """What made a registered model version: its run, training set digest and test metrics."""

    version: str
    run_id: str
    training_set: str
    summary: str


def describe_version(config: Config, workspace: Workspace, version: str) -> VersionInfo:
    from mlflow.exceptions import MlflowException

    mlflow_client = client(workspace)
    try:
        found = mlflow_client.get_model_version(config.name, version)
        run = mlflow_client.get_run(found.run_id)
    except MlflowException:
        raise TrainingError(f"no version {version} of model {config.name!r} in {workspace.mlflow_db}") from None
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.data.metrics.items()) if k.startswith("test_"))
    aliases = f" @{', @'.join(found.aliases)}" if found.aliases else ""
    return VersionInfo(
        version=str(found.version),
        run_id=found.run_id,
        training_set=str(found.tags.get("conveyor.training_set", "")),
        summary=f"{run.data.params.get('model', '?')}{aliases}; {metrics}",
    )
