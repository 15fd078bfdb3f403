"""Monitoring: the durable prediction log, drift against the training reference, reports."""

from conveyor.stages.monitoring._alerts import write_alerts
from conveyor.stages.monitoring._gauges import GAUGES, gauge_samples, monitor_gauges
from conveyor.stages.monitoring._labels import LabelsAdded, Performance, add_labels, label_text, record_labels
from conveyor.stages.monitoring._log import PredictionLog
from conveyor.stages.monitoring._monitor import monitor
from conveyor.stages.monitoring._result import DriftCheck
from conveyor.stages.monitoring._traffic import LabeledRow, labeled_traffic
from conveyor.stages.monitoring._webhook import AlertDelivery, post_alert

__all__ = [
    "AlertDelivery", "DriftCheck", "LabeledRow", "LabelsAdded", "Performance", "PredictionLog", "add_labels",
    "GAUGES", "gauge_samples", "label_text", "labeled_traffic", "monitor", "monitor_gauges", "post_alert",
    "record_labels", "write_alerts",
]
