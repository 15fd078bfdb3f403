"""`conveyor models` on a registry that holds runs but no registered model yet."""

from __future__ import annotations

from pathlib import Path

from conveyor.core.config import Config
from conveyor.core.workspace import Workspace


def test_no_registered_model_lists_no_version(tmp_path: Path) -> None:
    from conveyor.stages.training._registry import client, list_versions

    config = Config.model_validate({
        "name": "empty", "source": {"path": "d.csv"},
        "schema": {"target": "y", "task": "regression", "entity": {"key": "id"}, "event_time": {"kind": "ingest_time"},
                   "columns": {"id": {"type": "integer", "role": "id"}, "y": {"type": "float", "role": "numeric"}}},
    })
    workspace = Workspace.at(tmp_path)
    registry = client(config, workspace)
    registry.create_experiment("empty")  # the database exists, with an experiment and no registered model
    assert workspace.mlflow_db.exists()
    assert list_versions(config, workspace) == []
