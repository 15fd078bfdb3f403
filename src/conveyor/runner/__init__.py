"""Runner: the stage DAG with content-hash caching, run records, and the use cases behind the CLI."""

from conveyor.runner._commands import init_project, load_project, monitor_project, serve_project
from conveyor.runner._pipeline import STAGES, Event, Stage, last_artifact, run_pipeline, stage_names

__all__ = [
    "STAGES",
    "Event",
    "Stage",
    "init_project",
    "last_artifact",
    "load_project",
    "monitor_project",
    "run_pipeline",
    "serve_project",
    "stage_names",
]
