"""The last monitor run as gauges: what `/metrics` exports so Prometheus can alert on drift.

`monitor_gauges(config, workspace)` returns a function the server calls at each scrape: it reads
the latest report (`reports/drift.json`, `drift-<model>.json` for a model of `models:`) again
only when the file changed (its size and mtime), so a scrape costs a `stat`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.workspace import Workspace

__all__ = ["GAUGES", "Sample", "gauge_samples", "monitor_gauges"]

Sample = tuple[str, dict[str, str], float]
"""(metric name, labels, value)."""

GAUGES: dict[str, str] = {
    "conveyor_monitor_last_run_timestamp_seconds": "When the last `conveyor monitor` ran (Unix time)",
    "conveyor_monitor_predictions": "Predictions the last monitor run compared with the training reference",
    "conveyor_drift_detected": "1 when the last monitor run found dataset drift, else 0",
    "conveyor_drift_share": "Share of features that drifted in the last monitor run",
    "conveyor_feature_drifted": "1 when this feature drifted in the last monitor run, else 0",
    "conveyor_feature_drift_psi": "Population stability index of this feature in the last monitor run",
    "conveyor_feature_drift_effect": "Effect size (numeric: Wasserstein / reference std; categorical: Jensen-Shannon)",
    "conveyor_feature_missing_share": "Share of nulls of this feature in the served traffic of the last monitor run",
    "conveyor_performance": "The primary metric on labeled served predictions (last monitor run)",
    "conveyor_performance_test": "The same metric on the model's test split",
    "conveyor_performance_degraded": "1 when labeled predictions score degraded, else 0",
    "conveyor_labeled_predictions": "Labeled predictions the last monitor run scored",
}


def gauge_samples(report: dict[str, Any]) -> list[Sample]:
    """The gauges of one drift report (the JSON `conveyor monitor` writes)."""
    from datetime import datetime

    model = {"model": str(report.get("model", "")), "version": str(report.get("model_version", ""))}
    samples: list[Sample] = []

    def add(name: str, value: Any, **labels: str) -> None:
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)):
            samples.append((name, {**model, **labels}, float(value)))

    if report.get("checked_at"):
        add("conveyor_monitor_last_run_timestamp_seconds", datetime.fromisoformat(report["checked_at"]).timestamp())
    add("conveyor_monitor_predictions", report.get("n_current"))
    add("conveyor_drift_detected", report.get("verdict") == "drift")
    add("conveyor_drift_share", report.get("drifted_share"))
    features = list(report.get("features") or [])
    if report.get("prediction"):
        features.append(report["prediction"])
    for feature in features:
        name = str(feature.get("name"))
        add("conveyor_feature_drifted", bool(feature.get("drifted")), feature=name)
        add("conveyor_feature_drift_psi", feature.get("psi"), feature=name)
        add("conveyor_feature_drift_effect", feature.get("effect"), feature=name)
        add("conveyor_feature_missing_share", feature.get("current_missing"), feature=name)
    performance = report.get("performance")
    if performance:
        metric = str(performance.get("metric"))
        add("conveyor_labeled_predictions", performance.get("n_labeled"))
        add("conveyor_performance", performance.get("value"), metric=metric)
        add("conveyor_performance_test", performance.get("test_value"), metric=metric)
        if performance.get("degraded") is not None:
            add("conveyor_performance_degraded", bool(performance["degraded"]))
    return samples


def monitor_gauges(config: Config, workspace: Workspace) -> Callable[[], list[Sample]]:
    """A function returning the gauges of the latest report, read again only when it changed."""
    path: Path = workspace.reports / ("drift.json" if config.model is None else f"drift-{config.model}.json")
    lock = threading.Lock()
    cache: dict[str, Any] = {"stamp": None, "samples": []}

    def read() -> list[Sample]:
        try:
            stat = path.stat()
        except OSError:
            return []  # no monitor run yet: no gauges, not zeros that would look like "no drift"
        stamp = (stat.st_size, stat.st_mtime_ns)
        with lock:
            if stamp != cache["stamp"]:
                try:
                    cache["samples"] = gauge_samples(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    return list(cache["samples"])  # mid-write: the last good figures
                cache["stamp"] = stamp
            return list(cache["samples"])

    return read
