"""Reading the model registry: the champion, a version's model and reference predictions, and what
each version is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.records import REFERENCE_PREDICTION, REFERENCE_PROBABILITY
from conveyor.core.workspace import Workspace
from conveyor.stages.training._portable import sys_path_kept
from conveyor.stages.training._tracking import (
    client,
    local_model_path,
    on_server,
    quiet_downloads,
    where,
)
from conveyor.stages.training._train import TrainingSetInput, load_split

if TYPE_CHECKING:
    from conveyor.stages.training._model import ConveyorModel


CHAMPION = "champion"


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


def champion_number(config: Config, workspace: Workspace) -> str | None:
    """The version number `@champion` points to now (one registry call), or None."""
    current = champion_version(client(config, workspace), config.name)
    return None if current is None else str(current.version)


def version_model_id(version: Any) -> str:
    """The logged model behind a registry version: its `model_id`, else its `models:/<id>` source.

    The SQLite registry of MLflow 3.17 returns versions with `model_id` None; the source URI
    written at registration still names the model.
    """
    if getattr(version, "model_id", None):
        return str(version.model_id)
    source = str(getattr(version, "source", "") or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    raise TrainingError(f"model version {version.version} names no logged model (source {source!r})")


def _load(mlflow_client: Any, config: Config, workspace: Workspace, model_id: str) -> ConveyorModel:
    import mlflow.pyfunc

    path = local_model_path(mlflow_client, config, workspace, model_id)
    with sys_path_kept():
        model: ConveyorModel = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
    return model


REFERENCE_ROWS = 100_000
"""The most rows the monitoring reference keeps (a seeded sample of the training set beyond it)."""


def _write_reference(
    mlflow_client: Any, config: Config, workspace: Workspace, training_set: Artifact[TrainingSetInput],
    run_id: str, model_id: str, version: str,
) -> None:
    """The features and predictions monitoring compares served traffic with.

    The features of the whole training set up to `REFERENCE_ROWS` rows, else a seeded uniform
    sample of that many: drift statistics (PSI over deciles, KS, chi-square) are as stable on
    100k rows as on millions, and predicting millions of rows on one thread takes longer than
    the training. The predictions are the model's on the held-out test rows only (null on the
    rows it was fitted on): in-sample predictions follow the training targets more closely
    than any served prediction can, so traffic would look drifted against them.
    """
    import numpy as np
    import pandas as pd

    columns = list(dict.fromkeys([*config.model_inputs(), config.schema.target]))
    train_df, test_df, _ = load_split(config, training_set)
    frame = pd.concat([train_df[columns], test_df[columns]], ignore_index=True)
    held_out = np.arange(len(frame)) >= len(train_df)
    if len(frame) > REFERENCE_ROWS:
        keep = np.sort(np.random.default_rng(config.training.seed).choice(len(frame), REFERENCE_ROWS, replace=False))
        frame, held_out = frame.iloc[keep].reset_index(drop=True), held_out[keep]
    outputs = _load(mlflow_client, config, workspace, model_id).predict_frame(frame[held_out])
    reference = frame.copy()
    names = {"prediction": REFERENCE_PREDICTION, "probability": REFERENCE_PROBABILITY}
    for output, values in outputs.items():
        numeric = output == "probability" or config.schema.task == "regression"
        column = pd.Series(np.nan if numeric else None, index=frame.index, dtype=float if numeric else object)
        column[held_out] = values
        reference[names[output]] = column
    workspace.ensure(workspace.reference)
    path = workspace.reference_file(config.name, version)
    reference.to_parquet(path, index=False)
    mlflow_client.log_artifact(run_id, str(path), artifact_path="reference")


def load_champion(config: Config, workspace: Workspace, threads: int = 1) -> Champion:
    """The model behind `models:/<name>@champion`, ready for low-latency predictions."""
    return load_version(config, workspace, CHAMPION, threads=threads)


def load_version(config: Config, workspace: Workspace, ref: str, threads: int = 1) -> Champion:
    """A registered version of the project's model, by number ("3") or alias ("champion")."""
    from mlflow.exceptions import MlflowException

    if not on_server(config) and not workspace.mlflow_db.exists():
        raise TrainingError(f"no model registry at {workspace.mlflow_db}; run `conveyor run` first")
    mlflow_client = client(config, workspace)
    if ref.isdigit():
        try:
            current = mlflow_client.get_model_version(config.name, ref)
        except MlflowException:
            current = None
    else:
        current = _alias(mlflow_client, config.name, ref)
    if current is None:
        hint = ("run `conveyor run` (a model is promoted only when it beats the trivial one)"
                if ref == CHAMPION else "name a registered version or alias")
        raise TrainingError(f"no model {config.name!r} has {'the alias @' + ref if not ref.isdigit() else 'version ' + ref} "
                            f"in {where(config, workspace)}; {hint}")
    try:
        model = _load(mlflow_client, config, workspace, version_model_id(current))
    except Exception as exc:
        raise TrainingError(f"cannot load models:/{config.name}/{ref} (v{current.version}): {exc}") from exc
    model.set_threads(threads)
    path = workspace.reference_file(config.name, current.version)
    if not path.exists() and on_server(config):
        _fetch_reference(mlflow_client, current.run_id, path)
    return Champion(config.name, str(current.version), current.run_id, model, str(path) if path.exists() else None)


def _fetch_reference(mlflow_client: Any, run_id: str, path: Path) -> None:
    """A version's monitoring reference from its run on the server (logged by `_write_reference`),
    when this machine did not train it; left missing when the run has none."""
    import tempfile

    from mlflow.exceptions import MlflowException

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        try:
            with quiet_downloads():
                got = Path(mlflow_client.download_artifacts(run_id, f"reference/{path.name}", staging))
        except (MlflowException, OSError):
            return
        if got.is_file():
            got.replace(path)

def _where(version: Any | None) -> str | None:
    return None if version is None else str(version.version)


def _unmoved(mlflow_client: Any, name: str, read: str | None) -> None:
    """Refuse, in one line, when `@champion` no longer points where the decision read it."""
    now = _where(champion_version(mlflow_client, name))
    if now != read:
        moved = f"moved @{CHAMPION} to v{now}" if now is not None else f"removed @{CHAMPION}"
        against = f"v{read}" if read is not None else "no champion"
        raise TrainingError(f"another promotion {moved} while this decision compared against {against}; "
                            "run `conveyor promote` again")


def _alias(mlflow_client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class VersionInfo:
    """What made a registered model version: its run, training set, features, config and metrics."""

    version: str
    run_id: str
    training_set: str
    summary: str
    model: str = ""
    aliases: list[str] = field(default_factory=list)
    feature_service: str = ""
    config: str = ""
    created: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    trained_on: str = ""
    """`trained on N of M rows` (the run's tag; empty for runs that did not record it)."""


def _info(found: Any, run: Any | None) -> VersionInfo:
    from datetime import UTC, datetime

    tags = {str(k): str(v) for k, v in found.tags.items()}
    run_tags = run.data.tags if run is not None else {}
    metrics = {k[5:]: float(v) for k, v in (run.data.metrics.items() if run is not None else ()) if k.startswith("test_")}
    model = tags.get("conveyor.candidate") or (run.data.params.get("model", "?") if run is not None else "?")
    aliases = sorted(found.aliases)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
    alias_text = f" @{', @'.join(aliases)}" if aliases else ""
    created = datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
    return VersionInfo(
        version=str(found.version),
        run_id=str(found.run_id),
        training_set=tags.get("conveyor.training_set") or run_tags.get("conveyor.training_set", ""),
        summary=f"{model}{alias_text}; {shown}",
        model=model,
        aliases=aliases,
        feature_service=tags.get("conveyor.feature_service") or run_tags.get("conveyor.feature_service", ""),
        config=tags.get("conveyor.config") or run_tags.get("conveyor.config", ""),
        created=created,
        metrics=metrics,
        tags=tags,
        trained_on=str(run_tags.get("conveyor.trained_on", "")),
    )


def describe_version(config: Config, workspace: Workspace, version: str) -> VersionInfo:
    from mlflow.exceptions import MlflowException

    mlflow_client = client(config, workspace)
    try:
        found = mlflow_client.get_model_version(config.name, version)
        run = mlflow_client.get_run(found.run_id)
    except MlflowException:
        raise TrainingError(f"no version {version} of model {config.name!r} in {where(config, workspace)}") from None
    return _info(found, run)


def list_versions(config: Config, workspace: Workspace) -> list[VersionInfo]:
    """Every registered version of the project's model, newest first."""
    from mlflow.exceptions import MlflowException

    if not on_server(config) and not workspace.mlflow_db.exists():
        raise TrainingError(f"no model registry at {workspace.mlflow_db}; run `conveyor run` first")
    mlflow_client = client(config, workspace)
    try:
        found = mlflow_client.search_model_versions(f"name = '{config.name}'")
    except MlflowException:
        return []
    if not found:  # runs logged, nothing registered yet: no registered model to read aliases from
        return []
    infos = []
    aliases: dict[str, list[str]] = {}
    for alias, number in mlflow_client.get_registered_model(config.name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    for version in sorted(found, key=lambda v: -int(v.version)):
        if not version.aliases:
            version.aliases = aliases.get(str(version.version), [])
        try:
            run = mlflow_client.get_run(version.run_id)
        except MlflowException:
            run = None
        infos.append(_info(version, run))
    return infos
