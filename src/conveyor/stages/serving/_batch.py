"""Dynamic micro-batching and the group commit of the prediction log, on the event loop.

Concurrent requests of one worker are predicted together: the first request to find the
batcher idle becomes the leader, lets the requests already read off the sockets join (one
turn of the loop), takes up to `max_batch` rows, predicts them with one model call, appends
all their records to the log with one write (durable before any of them is answered), and
hands each request its own slice. Requests that arrive meanwhile form the next batch.

The policy never makes a lone client wait: the leader waits for more rows (up to
`max_wait_ms`) only while more requests are in flight than it has taken, so after a burst a
single client is back to its unbatched latency as soon as the burst's requests are answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.core.records import PredictionRecord, PredictionSource
from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._ports import PredictionSink, ServedModel
from conveyor.stages.serving._shadow import Shadow
from conveyor.stages.serving._slot import ModelSlot

__all__ = ["Batcher", "LogUnwritable", "Served"]

_logger = logging.getLogger("conveyor.serving")


class LogUnwritable(Exception):
    """The prediction log refused a batch (a full disk, a read-only or gone volume): nothing was answered."""

    def __init__(self, cause: OSError) -> None:
        self.reason = f"the prediction log cannot be written: {cause.strerror or cause}"
        super().__init__(self.reason)


@dataclass(frozen=True)
class Served:
    """What one request gets back: the model that answered and its records, in request order."""

    model: ServedModel
    records: list[PredictionRecord]


@dataclass
class _Job:
    rows: list[dict[str, Any]]
    source: PredictionSource
    entities: list[Any] | None
    future: asyncio.Future[Served]
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self, slot: ModelSlot, log: PredictionSink, metrics: ServiceMetrics, *, max_batch: int, max_wait_ms: float,
        shadow: Shadow | None = None,
    ) -> None:
        self.slot = slot
        self.log = log
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.shadow = shadow
        self.in_flight = 0
        """/predict requests between arrival and answer (the app counts them)."""
        self.log_down: str | None = None
        """Why the last write of the prediction log failed; None once a write succeeds (/health reads it)."""
        self._pending: deque[_Job] = deque()
        self._busy = False
        self._leader: asyncio.Task[None] | None = None

    async def submit(self, rows: list[dict[str, Any]], source: PredictionSource, entities: list[Any] | None) -> Served:
        future: asyncio.Future[Served] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(rows, source, entities, future))
        if not self._busy:  # a task of its own: a client that goes away cancels its request, not the batch
            self._busy = True
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        return await future

    async def _lead(self) -> None:
        try:
            await asyncio.sleep(0)  # requests already parsed in this turn of the loop join the batch
            while self._pending:
                if self.max_wait_s > 0:
                    await self._wait_for_more()
                self._run(self._take())
                if self._pending:
                    await asyncio.sleep(0)  # let the answers go out and the next requests in
        finally:
            self._busy = False
            while self._pending:  # only when the loop is shutting down: nobody is left to answer them
                self._pending.popleft().future.cancel()

    async def _wait_for_more(self) -> None:
        deadline = time.perf_counter() + self.max_wait_s
        while (
            self.in_flight > len(self._pending) and sum(len(j.rows) for j in self._pending) < self.max_batch
            and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0.0002)

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]  # a request larger than max_batch goes alone
        size = len(jobs[0].rows)
        while self._pending and size + len(self._pending[0].rows) <= self.max_batch:
            job = self._pending.popleft()
            jobs.append(job)
            size += len(job.rows)
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        """Predict, log (one write) and answer `jobs`, all with the same model."""
        started = time.perf_counter()
        model = self.slot.model
        rows = [row for job in jobs for row in job.rows]
        try:
            flags = model.screen(rows)  # what training never saw is answered as missing, and said so
            if any(flags):
                known = [{**row, **dict.fromkeys(flag)} if flag else row for row, flag in zip(rows, flags, strict=True)]
            else:
                known = rows
            outputs = model.predict_records(known, cleaned=True)
            predictions, probabilities = outputs["prediction"], outputs.get("probability")
            now = datetime.now(UTC)
            ids = os.urandom(16 * len(rows)).hex()  # 128 random bits per request id, in one system call
            answers: list[list[PredictionRecord]] = []
            index = 0
            for job in jobs:
                records = []
                for position, row in enumerate(job.rows):
                    records.append(PredictionRecord(
                        request_id=ids[32 * index:32 * index + 32], timestamp=now, model=model.name, model_version=model.version,
                        source=job.source, inputs=row, prediction=predictions[index],
                        probability=None if probabilities is None else probabilities[index],
                        entity=None if job.entities is None else job.entities[position],
                        warnings=flags[index] or None,
                    ))
                    index += 1
                answers.append(records)
            try:
                self.log.append([record for records in answers for record in records])  # the group commit
            except OSError as error:
                raise self._unwritable(error, len(rows)) from error
            if self.log_down is not None:
                _logger.warning("the prediction log is written again; predictions are answered")
                self.log_down = None
            if any(flags):
                self.metrics.unknown(flags)  # counted once answered (and logged)
        except Exception as exc:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.metrics.batch_rows.observe(len(rows))
        for job, records in zip(jobs, answers, strict=True):
            self.metrics.queue_wait.observe(started - job.queued)
            self.metrics.served(job.source, outputs if len(jobs) == 1 else _slice(records))
            if not job.future.done():  # a client that went away leaves a cancelled future
                job.future.set_result(Served(model, records))
        if self.shadow is not None:
            self.shadow.offer(rows, [record for records in answers for record in records])


    def _unwritable(self, error: OSError, rows: int) -> LogUnwritable:
        failure = LogUnwritable(error)
        self.metrics.log_failures.inc(rows)
        if self.log_down is None:  # one line per outage, not one per request
            _logger.error("%s (%r); answering 503 until a write succeeds", failure.reason, error)
        self.log_down = failure.reason
        return failure


def _slice(records: list[PredictionRecord]) -> dict[str, list[Any]]:
    if records and records[0].probability is not None:
        return {"prediction": [r.prediction for r in records], "probability": [r.probability for r in records]}
    return {"prediction": [r.prediction for r in records]}
