"""Runner: the stage graph with content-hash caching, run records, lineage, and the use cases behind the CLI."""

from conveyor.runner._commands import (
    add_labels_project,
    init_project,
    load_project,
    model_configs,
    monitor_project,
    serve_project,
)
from conveyor.runner._lineage import LineageStep, lineage_of_model, lineage_of_prediction
from conveyor.runner._lock import project_lock
from conveyor.runner._loop import LoopOutcome, act_on, loop_records
from conveyor.runner._pipeline import STAGES, Event, cache_key, last_artifact, run_pipeline, stage_names, stages_of
from conveyor.runner._prefect_tasks import prefect_steps
from conveyor.runner._project import ModelRegistry, Project, RunResult, StageRun, without_search

__all__ = [
    "STAGES",
    "add_labels_project",
    "Event",
    "LineageStep",
    "ModelRegistry",
    "Project",
    "RunResult",
    "StageRun",
    "LoopOutcome",
    "act_on",
    "cache_key",
    "init_project",
    "last_artifact",
    "lineage_of_model",
    "lineage_of_prediction",
    "load_project",
    "loop_records",
    "model_configs",
    "monitor_project",
    "prefect_steps",
    "project_lock",
    "run_pipeline",
    "serve_project",
    "stage_names",
    "stages_of",
    "without_search",
]
