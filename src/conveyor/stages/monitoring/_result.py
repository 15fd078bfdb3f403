"""The typed result of `conveyor monitor`."""

from __future__ import annotations

from typing import ClassVar

from conveyor.core.artifacts import Result

__all__ = ["DriftCheck"]


class DriftCheck(Result):
    """One drift check of served traffic against a model version's training reference."""

    kind: ClassVar[str] = "drift"

    verdict: str
    """"drift", "no drift" or "insufficient data"."""
    dataset_drift: bool
    drifted_share: float
    drifted: list[str]
    prediction_drift: bool | None
    n_current: int
    model_version: str
    json_report: str
    html_report: str

    def summary(self) -> str:
        return f"{self.verdict} (model v{self.model_version}, {self.n_current} predictions); report {self.html_report}"
