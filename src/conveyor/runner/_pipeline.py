"""The stage graph: ingest -> prepare -> features -> dataset -> train -> promote, with caching.

The runner only walks the graph. Each stage declares (in its own package) what it needs, the
config sections it reads and its code version; a stage is skipped when the hash of those,
plus Conveyor's version, matches its last record, its output still exists, and the stage
says its cached output is still valid. Every artifact is recorded by digest in
`.conveyor/artifacts/`, which is the lineage `conveyor lineage` walks.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor._version import __version__
from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.errors import ConveyorError
from conveyor.core.hashing import hash_json, short
from conveyor.core.memory import guard
from conveyor.core.report import write_text
from conveyor.core.stage import MODEL_STAGE_SEPARATOR, Stage, Upstream, model_stage
from conveyor.core.workspace import Workspace
from conveyor.runner._doctor import require
from conveyor.stages.features import DATASET, FEATURES
from conveyor.stages.prep import EDA, PREPARE
from conveyor.stages.sources import INGEST
from conveyor.stages.training import PROMOTE, TRAIN

__all__ = [
    "STAGES",
    "Event",
    "artifact_record",
    "cache_key",
    "last_artifact",
    "run_pipeline",
    "stage_names",
    "stages_of",
]

STAGES: tuple[Stage[Any], ...] = (INGEST, PREPARE, EDA, FEATURES, DATASET, TRAIN, PROMOTE)
PER_MODEL = (TRAIN.name, PROMOTE.name)
"""The stages each model of `models:` runs on its own (`train.fare`, `promote.fare`, `train.tip`, ...)."""


def stages_of(config: Config) -> tuple[Stage[Any], ...]:
    """The project's stages: `STAGES`, or with `models:` the shared stages then each model's own."""
    if not config.models:
        return STAGES
    shared = tuple(stage for stage in STAGES if stage.name not in PER_MODEL)
    own = tuple(model_stage(stage, model, PER_MODEL) for model in config.models for stage in STAGES
                if stage.name in PER_MODEL)
    return (*shared, *own)


def _base(name: str) -> str:
    """`train.fare` -> `train`: the stage a model's instance is made from."""
    return name.split(MODEL_STAGE_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Event:
    stage: str
    status: str  # "running" | "ran" | "cached"
    artifact: Artifact[Any] | None = None
    seconds: float = 0.0
    why: str = ""
    """For "ran": why the cached output could not be reused ("" on a first run)."""


def stage_names() -> list[str]:
    return [stage.name for stage in STAGES]


def _by_name(name: str, stages: tuple[Stage[Any], ...] = STAGES) -> Stage[Any]:
    for stage in stages:
        if stage.name == name:
            return stage
    if stages is STAGES and _base(name) != name and _base(name) in PER_MODEL:
        return _by_name(_base(name))  # a model's record reads back as its stage's result
    raise ConveyorError(f"{name}: no such stage; the stages are {', '.join(stage_names())}")


def _record_path(workspace: Workspace, name: str) -> Path:
    return workspace.state / "stages" / f"{name}.json"


def artifact_record(workspace: Workspace, digest: str) -> Path:
    """Where the artifact with this digest is recorded, whichever stage made it."""
    return workspace.state / "artifacts" / f"{short(digest)}.json"


def _read_record(workspace: Workspace, stage: Stage[Any], name: str | None = None) -> tuple[str, Artifact[Any]] | None:
    path = _record_path(workspace, name or stage.name)
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return str(saved["key"]), Artifact.from_json(saved["artifact"], workspace.root, stage.result)
    except (ValueError, KeyError, TypeError):  # a record from another version, or torn: run again
        return None


def last_artifact(workspace: Workspace, name: str) -> Artifact[Any] | None:
    """The artifact the last successful run of a stage left, if it still exists."""
    found = _read_record(workspace, _by_name(name), name)
    if found is None or not found[1].path.exists():
        return None
    return found[1]


def cache_key(stage: Stage[Any], config: Config, workspace: Workspace, upstream: dict[str, Artifact[Any]]) -> str:
    """What a stage's output depends on: upstream digests, config sections, code versions."""
    inputs: dict[str, Any] = {
        "stage": stage.name,
        "stage_version": stage.version,
        "conveyor": __version__,
        "name": config.name,
        "upstream": {name: upstream[name].digest for name in stage.needs},
        "config": {section: config.section(section) for section in stage.sections},
    }
    extra = stage.extra_key(config, workspace) if stage.extra_key is not None else None
    if extra is not None:
        inputs["extra"] = extra
    return hash_json(inputs)


def _cached(stage: Stage[Any], config: Config, workspace: Workspace, key: str) -> tuple[Artifact[Any] | None, str]:
    """The reusable cached artifact, or None and why it cannot be reused."""
    found = _read_record(workspace, stage)
    if found is None:
        return None, ""
    saved_key, artifact = found
    if saved_key != key:
        return None, "inputs changed"
    if not artifact.path.exists():
        return None, f"{artifact.path} is gone"
    if stage.still_valid is not None:
        reason = stage.still_valid(config, workspace, artifact)
        if reason is not None:
            return None, reason
    return artifact, ""


def _save(workspace: Workspace, stage: Stage[Any], key: str, artifact: Artifact[Any], seconds: float) -> None:
    artifact.write(artifact_record(workspace, artifact.digest), workspace.root)
    record = {
        "key": key,
        "artifact": artifact.to_json(workspace.root),
        "seconds": round(seconds, 3),
        "finished_at": datetime.now(UTC).isoformat(),
        "conveyor": __version__,
    }
    write_text(_record_path(workspace, stage.name), json.dumps(record, indent=2))


def _needs_closure(name: str, stages: tuple[Stage[Any], ...]) -> set[str]:
    todo, seen = list(_by_name(name, stages).needs), set()
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_by_name(current, stages).needs)
    return seen


def _upstream_of(only: str, todo: list[Stage[Any]], stages: tuple[Stage[Any], ...], workspace: Workspace) -> dict[str, Artifact[Any]]:
    """For a single-stage command: the recorded outputs of everything it depends on."""
    artifacts: dict[str, Artifact[Any]] = {}
    needed = set().union(*(_needs_closure(stage.name, stages) for stage in todo)) - {s.name for s in todo}
    for name in sorted(needed):
        found = last_artifact(workspace, name)
        if found is None:
            raise ConveyorError(
                f"`conveyor {only}` needs the output of `{name}`, which has not run "
                f"in {workspace.root}; run `conveyor run` (or `conveyor {name}`) first"
            )
        artifacts[name] = found
    return artifacts


def run_pipeline(
    config: Config,
    workspace: Workspace,
    *,
    only: str | None = None,
    start: str | None = None,
    stop: str | None = None,
    force: bool = False,
    on_event: Callable[[Event], None] = lambda event: None,
) -> dict[str, Artifact[Any]]:
    """Run the stages in order (or `only` one, from the recorded upstream artifacts).

    `start` forces that stage and every later one to run again; earlier ones may be cached.
    `stop` ends the run after that stage (its upstream runs or is cached; nothing after it).
    With `models:`, `train` and `promote` name every model's instance (`train.fare`, ...), and
    `train.fare` one model's.
    """
    stages = stages_of(config)
    names = [stage.name for stage in stages]

    def matching(value: str) -> list[int]:
        return [i for i, name in enumerate(names) if value in (name, _base(name))]

    for option, value in (("--from", start), ("--to", stop), ("stage", only)):
        if value is not None and not matching(value):
            raise ConveyorError(f"{option} {value}: no such stage; the stages are {', '.join(names)}")
    forced_from = matching(start)[0] if start else len(names)
    todo = [stages[i] for i in matching(only)] if only else list(stages)
    if stop is not None:  # by base stage: `--to train` runs every model's train, no promote
        order = [stage.name for stage in STAGES]
        last = order.index(_base(names[matching(stop)[0]]))
        todo = [stage for stage in todo if order.index(_base(stage.name)) <= last]
    if only and force:
        forced_from = matching(only)[0]
    require(config, workspace, [stage.name for stage in todo])  # a service down: one line, before any stage
    artifacts = _upstream_of(only, todo, stages, workspace) if only else {}
    log: list[dict[str, Any]] = []
    began = datetime.now(UTC)
    for stage in todo:
        key = cache_key(stage, config, workspace, artifacts)
        why = "forced"
        if names.index(stage.name) < forced_from:
            cached, why = _cached(stage, config, workspace, key)
            if cached is not None:
                artifacts[stage.name] = cached
                on_event(Event(stage.name, "cached", cached))
                log.append({"stage": stage.name, "status": "cached", "digest": cached.digest})
                continue
        on_event(Event(stage.name, "running"))
        started = time.perf_counter()
        with guard(stage.name, config.engine):  # out of memory: one line, not the kernel's SIGKILL
            artifact = stage.run(config, workspace, Upstream(artifacts))
        seconds = time.perf_counter() - started
        artifacts[stage.name] = artifact
        _save(workspace, stage, key, artifact, seconds)
        _release_memory()
        on_event(Event(stage.name, "ran", artifact, seconds, why))
        log.append({"stage": stage.name, "status": "ran", "seconds": round(seconds, 3), "digest": artifact.digest,
                    "why": why})  # the cache reason the project page shows
    _write_run(workspace, began, log)
    return artifacts


def _release_memory() -> None:
    """Hand the heap a finished stage freed back to the system (glibc keeps it otherwise).

    A whole `conveyor run` is one process: without this, each stage's peak stays in the RSS
    the next stage starts from (1M rows: 2.0 GB peak instead of 1.9 GB).
    """
    import ctypes
    import gc

    gc.collect()
    if "pyarrow" in sys.modules:  # Arrow's own pool (mimalloc) keeps freed blocks for reuse
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: glibc's allocator
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass


def _write_run(workspace: Workspace, began: datetime, log: list[dict[str, Any]]) -> None:
    runs = workspace.state / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = began.strftime("%Y%m%dT%H%M%S%fZ")
    record = {"started_at": began.isoformat(), "conveyor": __version__, "stages": log}
    (runs / f"{stamp}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")


def result_types() -> dict[str, type[Result]]:
    """Every stage's result type by artifact kind, for reading artifact records back."""
    return {stage.result.kind: stage.result for stage in STAGES}
