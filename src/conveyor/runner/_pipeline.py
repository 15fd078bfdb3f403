"""The stage DAG: ingest -> prepare -> features -> train -> promote, with content-hash caching.

A stage is skipped when the hash of its inputs (the upstream artifacts' digests and the
config sections it reads) matches its last record and its output still exists. Every run
leaves a record in `.conveyor/runs/`, which is the lineage of what it made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import ConveyorError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace

__all__ = ["STAGES", "Event", "Stage", "last_artifact", "run_pipeline", "stage_names"]

Runner = Callable[[Config, Workspace, dict[str, Artifact]], Artifact]


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    sections: tuple[str, ...]
    run: Runner
    describe: str


@dataclass(frozen=True)
class Event:
    stage: str
    status: str  # "running" | "ran" | "cached"
    artifact: Artifact | None = None
    seconds: float = 0.0


def _ingest(config: Config, workspace: Workspace, _: dict[str, Artifact]) -> Artifact:
    from conveyor.stages.sources import ingest

    return ingest(config, workspace)


def _prepare(config: Config, workspace: Workspace, up: dict[str, Artifact]) -> Artifact:
    from conveyor.stages.prep import prepare

    return prepare(config, workspace, up["ingest"])


def _features(config: Config, workspace: Workspace, up: dict[str, Artifact]) -> Artifact:
    from conveyor.stages.features import build_features

    return build_features(config, workspace, up["prepare"])


def _train(config: Config, workspace: Workspace, up: dict[str, Artifact]) -> Artifact:
    from conveyor.stages.features import training_set
    from conveyor.stages.training import train

    dataset = training_set(config, workspace, up["features"], up["prepare"])
    trained = train(config, workspace, dataset)
    return Artifact(
        trained.kind, trained.path, trained.digest, trained.inputs, trained.meta | {"training_set": dataset.to_json()}
    )


def _promote(config: Config, workspace: Workspace, up: dict[str, Artifact]) -> Artifact:
    from conveyor.stages.training import promote

    trained = up["train"]
    return promote(config, workspace, trained, Artifact.from_json(trained.meta["training_set"]))


STAGES: tuple[Stage, ...] = (
    Stage("ingest", (), ("source",), _ingest, "CSV snapshot to Parquet"),
    Stage("prepare", ("ingest",), ("schema", "cleaning"), _prepare, "types, quarantine, EDA (Polars)"),
    Stage("features", ("prepare",), ("schema", "features"), _features, "apply + materialize (Feast)"),
    Stage("train", ("features", "prepare"), ("schema", "training"), _train, "baseline + LightGBM (MLflow)"),
    Stage("promote", ("train",), ("promotion",), _promote, "gate + @champion (MLflow registry)"),
)


def stage_names() -> list[str]:
    return [stage.name for stage in STAGES]


def _record_path(workspace: Workspace, name: str) -> Any:
    return workspace.state / "stages" / f"{name}.json"


def last_artifact(workspace: Workspace, name: str) -> Artifact | None:
    """The artifact the last successful run of a stage left, if it still exists."""
    path = _record_path(workspace, name)
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    artifact = Artifact.from_json(record["artifact"])
    return artifact if artifact.path.exists() else None


def _key(stage: Stage, config: Config, workspace: Workspace, upstream: dict[str, Artifact]) -> str:
    inputs: dict[str, Any] = {name: upstream[name].digest for name in stage.needs}
    inputs["config"] = {section: config.section(section) for section in stage.sections}
    inputs["name"] = config.name
    if stage.name == "ingest":
        from conveyor.stages.sources import source_digest

        inputs["source"] = source_digest(config, workspace)
    return hash_json({"stage": stage.name, **inputs})


def run_pipeline(
    config: Config,
    workspace: Workspace,
    *,
    only: str | None = None,
    start: str | None = None,
    force: bool = False,
    on_event: Callable[[Event], None] = lambda event: None,
) -> dict[str, Artifact]:
    """Run the stages in order (or `only` one, from the recorded upstream artifacts).

    `start` forces that stage and every later one to run again; earlier ones may be cached.
    """
    names = stage_names()
    for option, value in (("--from", start), ("stage", only)):
        if value is not None and value not in names:
            raise ConveyorError(f"{option} {value}: no such stage; the stages are {', '.join(names)}")
    forced_from = names.index(start) if start else (names.index(only) if only and force else len(names))
    artifacts: dict[str, Artifact] = {}
    log: list[dict[str, Any]] = []
    began = datetime.now(UTC)
    for index, stage in enumerate(STAGES):
        if only is not None and stage.name != only:
            if names.index(stage.name) < names.index(only) and stage.name in _needs_closure(only):
                found = last_artifact(workspace, stage.name)
                if found is None:
                    raise ConveyorError(
                        f"`conveyor {only}` needs the output of `{stage.name}`, which has not run "
                        f"in {workspace.root}; run `conveyor run` (or `conveyor {stage.name}`) first"
                    )
                artifacts[stage.name] = found
            continue
        key = _key(stage, config, workspace, artifacts)
        record = _record_path(workspace, stage.name)
        if index < forced_from and record.exists():
            saved = json.loads(record.read_text(encoding="utf-8"))
            cached = Artifact.from_json(saved["artifact"])
            if saved.get("key") == key and cached.path.exists():
                artifacts[stage.name] = cached
                on_event(Event(stage.name, "cached", cached))
                log.append({"stage": stage.name, "status": "cached", "digest": cached.digest})
                continue
        on_event(Event(stage.name, "running"))
        started = time.perf_counter()
        artifact = stage.run(config, workspace, artifacts)
        seconds = time.perf_counter() - started
        artifacts[stage.name] = artifact
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(
            json.dumps({"key": key, "artifact": artifact.to_json(), "seconds": seconds,
                        "finished_at": datetime.now(UTC).isoformat()}, indent=2, default=str),
            encoding="utf-8",
        )
        on_event(Event(stage.name, "ran", artifact, seconds))
        log.append({"stage": stage.name, "status": "ran", "seconds": round(seconds, 3), "digest": artifact.digest})
    _write_run(workspace, began, log)
    return artifacts


def _needs_closure(name: str) -> set[str]:
    by_name = {stage.name: stage for stage in STAGES}
    todo, seen = list(by_name[name].needs), set()
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(by_name[current].needs)
    return seen


def _write_run(workspace: Workspace, began: datetime, log: list[dict[str, Any]]) -> None:
    runs = workspace.state / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = began.strftime("%Y%m%dT%H%M%S%fZ")
    (runs / f"{stamp}.json").write_text(json.dumps({"started_at": began.isoformat(), "stages": log}, indent=2))
