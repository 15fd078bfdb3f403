"""`/metrics` gauges from the last monitor run, collected at scrape time.

Serving imports no monitoring code: the runner hands it a function returning samples
(`ServiceParts.monitor_gauges`), and this collector turns them into Prometheus gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["MonitorCollector"]


class MonitorCollector:
    """A prometheus_client collector over `(name, labels, value)` samples, one gauge family per name."""

    def __init__(self, samples: Callable[[], Sequence[tuple[str, dict[str, str], float]]],
                 helps: dict[str, str]) -> None:
        self.samples = samples
        self.helps = helps

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, Any] = {}
        for name, labels, value in self.samples():
            if name not in families:
                families[name] = GaugeMetricFamily(name, self.helps.get(name, name), labels=sorted(labels))
            family = families[name]
            family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()

    def describe(self) -> list[Any]:
        return []  # families vary with the report: not described up front
