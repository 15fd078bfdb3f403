"""Lineage: from a served prediction (or a model version) back to the bytes of the source file.

Every artifact the runner records lists the digests of its inputs (`.conveyor/artifacts/`);
every registered model version carries its training set's digest (an MLflow tag); every
logged prediction names its model version. Walking those links answers "which data made this?".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.artifacts import relative_to, resolve_in
from conveyor.core.config import Config
from conveyor.core.errors import ConveyorError
from conveyor.core.workspace import Workspace
from conveyor.runner._pipeline import artifact_record, result_types

__all__ = ["LineageStep", "lineage_of_model", "lineage_of_prediction"]


@dataclass(frozen=True)
class LineageStep:
    """One link of the chain: what it is, its identity, where it lives, and a one-line summary."""

    depth: int
    kind: str
    digest: str
    path: str
    summary: str


def lineage_of_prediction(config: Config, workspace: Workspace, request_id: str) -> list[LineageStep]:
    """From a logged prediction; in a project with `models:`, found in whichever model's log holds it."""
    from conveyor.stages.monitoring import PredictionLog

    owners = [config] if not config.models else [config.for_model(m) for m in config.models]
    for own in owners:
        folder = workspace.prediction_log(own.model)
        record = PredictionLog(folder).find(request_id)
        if record is not None:
            break
    else:
        where = ", ".join(relative_to(workspace.prediction_log(o.model), workspace.root) for o in owners)
        raise ConveyorError(f"no logged prediction has request id {request_id!r} in {where}")
    outputs = {k: v for k, v in (("prediction", record.prediction), ("probability", record.probability)) if v is not None}
    head = LineageStep(
        0, "prediction", record.request_id, relative_to(folder, workspace.root),
        f"{record.timestamp.isoformat()} by {own.name} v{record.model_version} ({record.source}): "
        + ", ".join(f"{k}={v}" for k, v in outputs.items()),
    )
    return [head, *lineage_of_model(own, workspace, record.model_version, depth=1)]


def lineage_of_model(config: Config, workspace: Workspace, version: str, *, depth: int = 0) -> list[LineageStep]:
    from conveyor.stages.training import describe_version, on_server, where

    info = describe_version(config, workspace, version)
    registry = where(config, workspace) if on_server(config) else relative_to(workspace.mlflow_db, workspace.root)
    steps = [LineageStep(depth, "model", f"{config.name} v{info.version}", registry,
                         f"run {info.run_id}; {info.summary}")]
    if not info.training_set:
        raise ConveyorError(f"model v{version} records no training set digest (tag conveyor.training_set)")
    steps += _retrained(config, workspace, info.version, depth + 1)
    steps += _walk(workspace, "training_set", info.training_set, depth + 1)
    return steps


def _retrained(config: Config, workspace: Workspace, version: str, depth: int) -> list[LineageStep]:
    """The `monitor --act` retraining that promoted this version, if one did."""
    from conveyor.runner._loop import loop_records

    for record in loop_records(config, workspace):
        decision, retrain = record.get("decision") or {}, record.get("retrain") or {}
        if decision.get("promoted") and str(decision.get("champion")) == str(version):
            return [LineageStep(depth, "retrain", record["at"], record["_path"],
                                f"{record['why']}; {retrain['appended_rows']} labeled served rows appended in "
                                f"{retrain['snapshot']}; {decision['metric']} on {decision['n_fresh']} fresh rows: "
                                f"{decision['challenger_score']:.4f} vs v{decision['champion_version']} "
                                + ("-" if decision.get("champion_score") is None
                                   else f"{decision['champion_score']:.4f}"))]
    return []


def _walk(workspace: Workspace, name: str, digest: str, depth: int) -> list[LineageStep]:
    record_path = artifact_record(workspace, digest)
    if name == "source_file":
        return [LineageStep(depth, "source_file", digest, "", "SHA-256 of the source file's bytes")]
    if not record_path.exists():
        return [LineageStep(depth, name, digest, "", "(no artifact record in .conveyor/artifacts: made elsewhere)")]
    data: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
    summary = ""
    result_type = result_types().get(str(data["kind"]))
    if result_type is not None:
        try:
            summary = result_type.model_validate(data["result"]).summary()
        except ValueError:
            summary = "(a record from another version of Conveyor)"
    path: Path = resolve_in(str(data["path"]), workspace.root)
    exists = "" if path.exists() else " [missing]"
    steps = [LineageStep(depth, str(data["kind"]), digest, relative_to(path, workspace.root) + exists, summary)]
    for child, child_digest in sorted(dict(data.get("inputs", {})).items()):
        steps += _walk(workspace, str(child), str(child_digest), depth + 1)
    return steps
