"""Hot swap: the model being served, replaced whole when `@champion` moves.

Requests read `slot.model` once and use that object to the end, so every answer names the
version that computed it, and a swap (one attribute assignment, after the new model is fully
loaded and checked) fails no request. Loading happens off the request path: in a poller thread
every `serving.reload_s`, or in a worker thread for `POST /admin/reload`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._ports import Reloader, ServedModel

__all__ = ["ModelSlot"]

log = logging.getLogger("conveyor.serving")


class ModelSlot:
    def __init__(
        self, model: ServedModel, reload: Reloader | None, metrics: ServiceMetrics,
        check: Callable[[ServedModel], None],
    ) -> None:
        self.model = model
        self._reload = reload
        self._metrics = metrics
        self._check = check
        self._lock = threading.Lock()  # one load at a time (poller and admin)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def reloadable(self) -> bool:
        return self._reload is not None

    def reload_now(self, *, force: bool = False) -> bool:
        """Swap in the champion if it moved; True when the model changed. A failed load keeps the old one."""
        if self._reload is None:
            return False
        with self._lock:
            try:
                new = self._reload(force=force)
                if new is None or new.version == self.model.version:
                    return False
                self._check(new)
            except Exception as exc:  # a broken new version must not take down the service
                self._metrics.reload_failures.inc()
                log.error("conveyor: keeping %s v%s; reloading @champion failed: %s",
                          self.model.name, self.model.version, exc)
                return False
            old, self.model = self.model, new
            self._metrics.model.labels(old.name, old.version).set(0)
            self._metrics.model.labels(new.name, new.version).set(1)
            self._metrics.reloads.inc()
            log.warning("conveyor: now serving %s v%s (was v%s)", new.name, new.version, old.version)
            return True

    def start(self, every_s: float) -> None:
        """Poll every `every_s` seconds in a daemon thread (not with 0 or without a reloader)."""
        if self._reload is None or every_s <= 0 or self._thread is not None:
            return
        self._stop.clear()

        def poll() -> None:
            while not self._stop.wait(every_s):
                self.reload_now()

        self._thread = threading.Thread(target=poll, name="conveyor-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
