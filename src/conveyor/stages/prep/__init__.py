"""Prep: typing, cleaning, quarantine of bad rows, and the EDA report."""

from conveyor.stages.prep._clean import EVENT_TIMESTAMP, clean_frame
from conveyor.stages.prep._prepare import PREPARE, CleanData, prepare
from conveyor.stages.prep._report import EDA, EdaReport

__all__ = ["EDA", "EVENT_TIMESTAMP", "PREPARE", "CleanData", "EdaReport", "clean_frame", "prepare"]
