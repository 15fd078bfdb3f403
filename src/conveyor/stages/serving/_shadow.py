"""The shadow challenger: a second model scores the champion's traffic, off the request path.

`offer` hands a served batch to a daemon thread through a bounded queue and returns at once;
when the thread falls behind, batches are dropped and counted (`conveyor_shadow_dropped_rows`),
never queued without bound nor waited for. The shadow's records carry the champion's request
ids, so the two outputs of a request join on `request_id`; they go to a log of their own, so
drift monitoring of the champion never mixes them in.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import replace
from typing import Any

from conveyor.core.records import PredictionRecord
from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._ports import PredictionSink, ServedModel

__all__ = ["Shadow"]

log = logging.getLogger("conveyor.serving")

_Batch = tuple[list[dict[str, Any]], list[PredictionRecord]]


class Shadow:
    def __init__(self, model: ServedModel, sink: PredictionSink, metrics: ServiceMetrics, capacity: int = 64) -> None:
        self.model = model
        self.sink = sink
        self.metrics = metrics
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def offer(self, rows: list[dict[str, Any]], served: list[PredictionRecord]) -> None:
        self._ensure_started()
        try:
            self._queue.put_nowait((rows, served))
        except queue.Full:
            self.metrics.shadow_dropped.inc(len(rows))

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="conveyor-shadow", daemon=True)
                    self._thread.start()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until every offered batch is scored (tests, shutdown)."""
        if self._thread is None:
            return
        self._queue.put(None, timeout=timeout)  # after every batch offered so far; None stops the thread
        self._thread.join(timeout)
        self._thread = None

    def _work(self) -> None:
        model = self.model
        while True:
            item = self._queue.get()
            if item is None:
                return
            rows, served = item
            try:
                outputs = model.predict_records(rows, cleaned=True)
                predictions, probabilities = outputs["prediction"], outputs.get("probability")
                self.sink.append([
                    replace(record, model=model.name, model_version=model.version, prediction=predictions[i],
                            probability=None if probabilities is None else probabilities[i])
                    for i, record in enumerate(served)
                ])
                self.metrics.shadow_rows.inc(len(rows))
            except Exception as exc:  # the shadow never harms the champion's service
                self.metrics.shadow_dropped.inc(len(rows))
                log.error("conveyor: shadow %s v%s failed: %s", model.name, model.version, exc)
