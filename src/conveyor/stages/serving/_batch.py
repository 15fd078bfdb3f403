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
from operator import itemgetter
from typing import Any, Protocol, cast

from conveyor.core.records import PredictionBatch, PredictionRecord, PredictionSource
from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._ports import PredictionSink, ServedModel
from conveyor.stages.serving._shadow import Shadow
from conveyor.stages.serving._slot import ModelSlot

__all__ = ["Batcher", "ColumnarModel", "LogUnwritable", "Served"]

_logger = logging.getLogger("conveyor.serving")


class LogUnwritable(Exception):
    """The prediction log refused a batch (a full disk, a read-only or gone volume): nothing was answered."""

    def __init__(self, cause: OSError) -> None:
        self.reason = f"the prediction log cannot be written: {cause.strerror or cause}"
        super().__init__(self.reason)


@dataclass(frozen=True)
class Served:
    """What one request gets back: the model that answered and its rows of the batch, in request order."""

    model: ServedModel
    batch: PredictionBatch
    start: int
    stop: int

    @property
    def records(self) -> list[PredictionRecord]:
        """The request's predictions as records (made on demand: the answer is written from the columns)."""
        return list(self.batch[self.start:self.stop])


class ColumnarModel(Protocol):
    """A `ServedModel` that also predicts a batch given by column (the champion): see `ConveyorModel.predict_columns`."""

    def predict_columns(
        self, columns: dict[str, list[Any]], count: int,
    ) -> tuple[dict[str, list[Any]], dict[int, dict[str, str]], dict[str, list[Any]]]: ...


@dataclass
class _Job:
    rows: list[dict[str, Any]] | None
    """The rows as dicts (entity rows, the tests' models); or None, given by column."""
    columns: dict[str, list[Any]] | None
    count: int
    cleaned: bool
    """The missing-value rule was applied already."""
    source: PredictionSource
    entities: list[Any] | None
    future: asyncio.Future[Served]
    queued: float = field(default_factory=time.perf_counter)

    def by_column(self, names: list[str]) -> dict[str, list[Any]]:
        if self.columns is not None:
            return self.columns
        assert self.rows is not None
        return {name: list(values) for name, values in zip(names, _columns(self.rows, names), strict=True)}

    def by_row(self, model: ServedModel) -> list[dict[str, Any]]:
        if self.rows is not None:
            rows = self.rows
        else:
            assert self.columns is not None
            names = list(self.columns)
            rows = [dict(zip(names, values, strict=True)) for values in zip(*self.columns.values(), strict=True)]
        return rows if self.cleaned else [model.clean(row) for row in rows]


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
        """Predict (cleaned) `rows` in the next batch."""
        return await self._submit(_Job(rows, None, len(rows), True, source, entities, self._future()))

    async def submit_columns(self, columns: dict[str, list[Any]], count: int) -> Served:
        """Predict `count` validated rows of raw values given by column (feature -> values), not yet cleaned."""
        return await self._submit(_Job(None, columns, count, False, "rows", None, self._future()))

    @staticmethod
    def _future() -> asyncio.Future[Served]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, job: _Job) -> Served:
        self._pending.append(job)
        if not self._busy:  # a task of its own: a client that goes away cancels its request, not the batch
            self._busy = True
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        return await job.future

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
            self.in_flight > len(self._pending) and sum(j.count for j in self._pending) < self.max_batch
            and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0.0002)

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]  # a request larger than max_batch goes alone
        size = jobs[0].count
        while self._pending and size + self._pending[0].count <= self.max_batch:
            job = self._pending.popleft()
            jobs.append(job)
            size += job.count
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        """Predict, log (one write) and answer `jobs`, all with the same model."""
        started = time.perf_counter()
        model = self.slot.model
        count = sum(job.count for job in jobs)
        inputs: dict[str, list[Any]] | list[dict[str, Any]]
        try:
            if hasattr(model, "predict_columns"):  # the champion: whole columns, no dict per row
                outputs, found, inputs = self._by_column(cast(ColumnarModel, model), jobs, count)
            else:
                rows: list[dict[str, Any]] = [row for job in jobs for row in job.by_row(model)]
                flags = model.screen(rows)  # what training never saw is answered as missing, and said so
                found = {index: flag for index, flag in enumerate(flags) if flag}
                known = [{**row, **dict.fromkeys(flags[i])} if i in found else row for i, row in enumerate(rows)]
                outputs = model.predict_records(known, cleaned=True)
                inputs = rows
            sources: list[PredictionSource] = []
            entities: list[Any] | None = None
            if any(job.entities is not None for job in jobs):
                entities = []
                for job in jobs:
                    entities.extend(job.entities if job.entities is not None else [None] * job.count)
            for job in jobs:
                sources.extend([job.source] * job.count)
            ids = os.urandom(16 * count).hex()  # 128 random bits per request id, in one system call
            batch = PredictionBatch(
                request_ids=[ids[i:i + 32] for i in range(0, 32 * count, 32)], timestamp=datetime.now(UTC),
                model=model.name, model_version=model.version, sources=sources, inputs=inputs,
                predictions=outputs["prediction"], probabilities=outputs.get("probability"), entities=entities,
                warnings=found,
            )
            try:
                self.log.append(batch)  # the group commit
            except OSError as error:
                raise self._unwritable(error, count) from error
            if self.log_down is not None:
                _logger.warning("the prediction log is written again; predictions are answered")
                self.log_down = None
            if found:
                self.metrics.unknown(list(found.values()))  # counted once answered (and logged)
        except Exception as exc:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.metrics.batch_rows.observe(count)
        start = 0
        for job in jobs:
            stop = start + job.count
            self.metrics.queue_wait.observe(started - job.queued)
            self.metrics.served(job.source, outputs if len(jobs) == 1 else _slice(outputs, start, stop))
            if not job.future.done():  # a client that went away leaves a cancelled future
                job.future.set_result(Served(model, batch, start, stop))
            start = stop
        if self.shadow is not None:
            self.shadow.offer(_by_row(inputs) if isinstance(inputs, dict) else inputs, list(batch))

    @staticmethod
    def _by_column(
        model: ColumnarModel, jobs: list[_Job], count: int,
    ) -> tuple[dict[str, list[Any]], dict[int, dict[str, str]], dict[str, list[Any]]]:
        names: list[str] = list(cast(ServedModel, model).features)
        if len(jobs) == 1:
            columns = jobs[0].by_column(names)
        else:
            parts = [job.by_column(names) for job in jobs]
            columns = {name: [value for part in parts for value in part[name]] for name in names}
        return model.predict_columns(columns, count)

    def _unwritable(self, error: OSError, rows: int) -> LogUnwritable:
        failure = LogUnwritable(error)
        self.metrics.log_failures.inc(rows)
        if self.log_down is None:  # one line per outage, not one per request
            _logger.error("%s (%r); answering 503 until a write succeeds", failure.reason, error)
        self.log_down = failure.reason
        return failure


def _slice(outputs: dict[str, list[Any]], start: int, stop: int) -> dict[str, list[Any]]:
    return {name: values[start:stop] for name, values in outputs.items()}


def _columns(rows: list[dict[str, Any]], names: list[str]) -> list[list[Any]] | list[tuple[Any, ...]]:
    """The rows' values by column (None where a row lacks one): one C-level pass when every row has every name."""
    if len(names) == 1:
        return [[row.get(names[0]) for row in rows]]
    try:
        return list(zip(*map(itemgetter(*names), rows), strict=True)) if rows and names else [[] for _ in names]
    except KeyError:
        return [[row.get(name) for row in rows] for name in names]


def _by_row(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
