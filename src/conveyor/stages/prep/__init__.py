"""Prep: typing, cleaning, quarantine of bad rows, and the EDA report."""

from conveyor.stages.prep._clean import EVENT_TIMESTAMP, PREPARE, CleanData, clean_frame, prepare

__all__ = ["EVENT_TIMESTAMP", "PREPARE", "CleanData", "clean_frame", "prepare"]
