"""Monitoring: the durable prediction log, drift against the training reference, reports."""

from conveyor.stages.monitoring._labels import LabelsAdded, Performance, add_labels, label_text, record_labels
from conveyor.stages.monitoring._log import PredictionLog
from conveyor.stages.monitoring._monitor import monitor
from conveyor.stages.monitoring._result import DriftCheck

__all__ = [
    "DriftCheck", "LabelsAdded", "Performance", "PredictionLog", "add_labels", "label_text", "monitor", "record_labels",
]
