"""Monitoring: the durable prediction log, drift against the training reference, reports."""

from conveyor.stages.monitoring._log import PredictionLog
from conveyor.stages.monitoring._monitor import monitor

__all__ = ["PredictionLog", "monitor"]
