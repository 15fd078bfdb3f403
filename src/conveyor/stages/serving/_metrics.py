"""Prometheus metrics of one service, in a registry of its own, and the middleware that counts requests."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Measure", "ServiceMetrics"]

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
        self.predictor = Gauge(
            "conveyor_predictor_info", "Which predictor answers: compiled (native trees) or lightgbm", ["predictor"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "conveyor_batch_rows", "Rows predicted together in one micro-batch (one model call, one log write)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000), registry=self.registry,
        )
        self.queue_wait = Histogram(
            "conveyor_batch_queue_wait_seconds", "Time a request waited for its micro-batch to start",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1), registry=self.registry,
        )
        self.reloads = Counter("conveyor_model_reloads", "Hot swaps to a new @champion", registry=self.registry)
        self.reload_failures = Counter(
            "conveyor_model_reload_failures", "Reloads that failed (the old model kept serving)", registry=self.registry
        )
        self.log_failures = Counter(
            "conveyor_log_write_failed_rows", "Rows answered 503 because the prediction log could not be written",
            registry=self.registry,
        )
        self.unknown_values = Counter(
            "conveyor_unknown_values", "Input values training never saw, answered as missing (by feature and kind)",
            ["feature", "kind"], registry=self.registry,
        )
        self.shadow_rows = Counter("conveyor_shadow_rows", "Rows scored by the shadow model", registry=self.registry)
        self.shadow_dropped = Counter(
            "conveyor_shadow_dropped_rows", "Rows the shadow model skipped (behind, or failed)", registry=self.registry
        )

    def set_predictor(self, current: str | None) -> None:
        """1 for the predictor answering now, 0 for the others seen before."""
        if current is not None:
            self.predictor.labels(current).set(1)
        for labels in [s.labels for metric in self.predictor.collect() for s in metric.samples]:
            if labels["predictor"] != current:
                self.predictor.labels(labels["predictor"]).set(0)

    def served(self, source: str, outputs: dict[str, list[Any]]) -> None:
        """Count predictions and observe their values (the probability, for classification)."""
        observed = outputs.get("probability", outputs["prediction"])
        self.predictions.labels(source).inc(len(observed))
        observe_many(self.prediction_value, observed)

    def unknown(self, flags: list[dict[str, str]]) -> None:
        """Count the values `ServedModel.screen` flagged, by feature and kind."""
        for flag in flags:
            for feature, why in flag.items():
                self.unknown_values.labels(feature, why).inc()


def observe_many(histogram: Histogram, values: list[Any]) -> None:
    """`histogram.observe(v)` for each value, counted per bucket with one NumPy search (a batch of
    100 rows made 100 Python-level observes per request). The same counts and sum as observe."""
    import numpy as np

    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None or len(values) <= 8:  # a few, or another prometheus_client
        for value in values:
            histogram.observe(float(value))
        return
    amounts = np.asarray(values, dtype=np.float64)
    found = np.searchsorted(np.asarray(bounds, dtype=np.float64), amounts, side="left")  # first bound >= amount
    total.inc(float(amounts.sum()))
    counts = np.bincount(found, minlength=len(bounds))[: len(bounds)]  # past the last bound (NaN): not counted
    for index in np.flatnonzero(counts).tolist():
        buckets[index].inc(int(counts[index]))



def _value_buckets(task: str) -> tuple[float, ...]:
    if task == "regression":
        return (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, float("inf"))
    return tuple(i / 10 for i in range(11)) + (float("inf"),)


class Measure:
    """ASGI middleware: count each HTTP request by method, route and status, and time it."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths  # answered before routing (401, 415) still count under their own path
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """(method, path, status) -> its counter and histogram: `labels()` looked up once per label set."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            path = route or (scope["path"] if scope["path"] in self.paths else "unmatched")
            key = (scope["method"], path, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (self.metrics.requests.labels(key[0], path, str(status)),
                                                  self.metrics.latency.labels(key[0], path))
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
