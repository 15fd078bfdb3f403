"""Labeled traffic: served predictions joined with their labels, oldest first (for retraining)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.core.config import Config
from conveyor.core.workspace import Workspace
from conveyor.stages.monitoring._labels import LabelLog
from conveyor.stages.monitoring._log import PredictionLog

__all__ = ["LabeledRow", "labeled_traffic"]


@dataclass(frozen=True)
class LabeledRow:
    request_id: str
    timestamp: str
    """When it was served (ISO 8601, UTC)."""
    model_version: str
    inputs: dict[str, Any]
    """The model inputs as served and logged (after the missing-value rule)."""
    label: Any


def labeled_traffic(config: Config, workspace: Workspace) -> list[LabeledRow]:
    """Every logged prediction of this model that has a label, in serving order (oldest first)."""
    labels = LabelLog(workspace.labels(config.model)).read()
    if not labels:
        return []
    rows = []
    for record in PredictionLog(workspace.prediction_log(config.model)).read():
        request_id = str(record.get("request_id"))
        label = labels.get(request_id)
        if label is None or not isinstance(record.get("inputs"), dict):
            continue
        rows.append(LabeledRow(request_id, str(record.get("timestamp", "")), str(record.get("model_version", "")),
                               dict(record["inputs"]), label))
    rows.sort(key=lambda r: r.timestamp)  # stable: the log's own order within one instant
    return rows
