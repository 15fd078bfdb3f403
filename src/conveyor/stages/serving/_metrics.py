"""Prometheus metrics of one service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self, task: str, value_buckets: tuple[float, ...] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "conveyor_requests", "HTTP requests answered", ["method", "path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "conveyor_request_latency_seconds", "Time to answer a request", ["method", "path"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.predictions = Counter(
            "conveyor_predictions", "Predictions served", ["source"], registry=self.registry
        )
        self.prediction_value = Histogram(
            "conveyor_prediction_value",
            "Predicted value" if task == "regression" else "Predicted probability of the positive class",
            buckets=value_buckets or _value_buckets(task), registry=self.registry,
        )
        self.model = Gauge("conveyor_model_info", "The model being served", ["name", "version"], registry=self.registry)


def _value_buckets(task: str) -> tuple[float, ...]:
    if task == "regression":
        return (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, float("inf"))
    return tuple(i / 10 for i in range(11)) + (float("inf"),)
