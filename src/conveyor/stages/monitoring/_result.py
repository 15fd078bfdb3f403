"""The typed result of `conveyor monitor`."""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from conveyor.core.artifacts import Result
from conveyor.stages.monitoring._labels import Performance

__all__ = ["DriftCheck", "DriftRow"]


class DriftRow(BaseModel):
    """One compared column (a feature, or the model's output): its test, p-value, PSI, effect size,
    missing shares, verdict, and the rules that fired (each with its figure)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    test: str
    p_value: float | None
    psi: float | None
    drifted: bool
    effect: float | None = None
    """Numeric: Wasserstein distance / reference std; categorical: Jensen-Shannon distance."""
    reference_missing: float | None = None
    current_missing: float | None = None
    rules: list[str] = Field(default_factory=list)
    """Why it drifted: each fired rule in words, with its figure and threshold."""
    output: bool = False
    """The model's output (prediction drift), not a feature: a feature may be named `prediction` too."""

    @classmethod
    def of(cls, name: str, test: str, p_value: float, psi: float, drifted: bool, *, effect: float = math.nan,
           missing: tuple[float, float] = (math.nan, math.nan), rules: list[str] | None = None,
           output: bool = False) -> DriftRow:
        def finite(value: float) -> float | None:
            return None if value is None or not math.isfinite(value) else float(value)

        return cls(name=name, test=test, p_value=finite(p_value), psi=finite(psi), drifted=drifted,
                   effect=finite(effect), reference_missing=finite(missing[0]), current_missing=finite(missing[1]),
                   rules=list(rules or []), output=output)


class DriftCheck(Result):
    """One drift check of served traffic against a model version's training reference."""

    kind: ClassVar[str] = "drift"

    verdict: str
    """"drift", "no drift" or "insufficient data"."""
    dataset_drift: bool | None
    """None when there were too few predictions to tell."""
    drifted_share: float
    drifted: list[str]
    prediction_drift: bool | None
    n_current: int
    model_version: str
    json_report: str
    html_report: str
    n_reference: int = 0
    rows: list[DriftRow] = Field(default_factory=list)
    """Every compared column, the drifted ones first, then the most shifted (largest PSI)."""
    reasons: list[str] = Field(default_factory=list)
    """Why the verdict is what it is: the share of drifted features, a broken feature, a new field, the prediction."""
    new_fields: list[str] = Field(default_factory=list)
    """Fields in the logged traffic that the model's reference does not have (a schema change)."""
    performance: Performance | None = None
    """The checked version's labeled predictions scored (`conveyor labels add`); None without labels."""
    unreadable: int = 0
    """Lines of the prediction log read that were not records (a torn line): left out, and counted here."""
    unreadable_at: list[str] = Field(default_factory=list)
    """Where the first of them are: `predictions/<day>.jsonl:<line>`."""
    unknown_values: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Served values training never saw, answered as missing (the log's `warnings`): feature -> why -> count."""

    def summary(self) -> str:
        return f"{self.verdict} (model v{self.model_version}, {self.n_current} predictions); report {self.html_report}"
