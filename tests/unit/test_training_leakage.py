"""`conveyor init`'s leakage and target checks, on small frames built to show each case."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conveyor.core.errors import DataError
from conveyor.stages.sources._leakage import check_and_find_leaks, check_target, find_leaks


def _frame(columns: dict[str, object]) -> pl.DataFrame:
    """As `init` sees a CSV: every cell text, missing as null."""
    return pl.DataFrame({k: [None if v is None else str(v) for v in vs] for k, vs in columns.items()})  # type: ignore[attr-defined]


def test_a_pair_summing_to_the_target_is_flagged_with_evidence() -> None:
    rng = np.random.default_rng(0)
    casual, registered = rng.integers(0, 50, 300), rng.integers(0, 400, 300)
    frame = _frame({"temp": rng.random(300).round(3), "casual": casual, "registered": registered,
                    "cnt": casual + registered})
    leaks = find_leaks(frame, "cnt", "regression", ["temp", "casual", "registered"])
    assert [leak.column for leak in leaks] == ["casual", "registered"]
    assert "casual + registered == cnt on 300 of 300 rows" in leaks[0].evidence


def test_a_total_that_includes_the_target_is_flagged_despite_exceptions() -> None:
    rng = np.random.default_rng(1)
    n = 400
    fare = rng.integers(250, 6000, n) / 100
    tip, tax = rng.integers(0, 900, n) / 100, np.full(n, 0.5)
    surcharge = np.where(rng.random(n) < 0.7, 2.5, 0.0)
    total = fare + tip + tax + surcharge + np.where(rng.random(n) < 0.2, 2.5, 0.0)  # 20 %: left out, as in real files
    frame = _frame({"distance": (fare / 2.5 + rng.normal(scale=2, size=n)).round(2), "tip": tip, "tax": tax, "surcharge": surcharge,
                    "total": total.round(2), "fare": fare})
    leaks = find_leaks(frame, "fare", "regression", ["distance", "tip", "tax", "surcharge", "total"])
    assert [leak.column for leak in leaks] == ["total"]
    assert leaks[0].evidence.startswith("fare == total - ")


def test_a_near_copy_and_a_column_filled_only_with_the_target_are_flagged() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=500)
    label = np.where(y > 0.5, "churned", "stayed")
    churn_date = [f"2024-01-{i % 28 + 1:02d}" if lab == "churned" else None for i, lab in enumerate(label)]
    frame = _frame({"x": rng.normal(size=500).round(4), "score": (y * 1000 + 7).round(2), "churn_date": churn_date,
                    "label": label})
    leaks = {leak.column: leak.evidence for leak in find_leaks(frame, "label", "classification", ["x", "score", "churn_date"])}
    assert set(leaks) == {"score", "churn_date"}
    assert "ROC AUC 1.0000" in leaks["score"]
    assert "filled exactly when label is 'churned'" in leaks["churn_date"]


def test_honest_features_are_not_flagged() -> None:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=1000), rng.integers(0, 24, 1000)
    y = 3 * x1 + np.sin(x2) + rng.normal(scale=0.5, size=1000)
    frame = _frame({"x1": x1.round(3), "x2": x2, "noise": rng.normal(size=1000).round(3), "y": y.round(3)})
    assert find_leaks(frame, "y", "regression", ["x1", "x2", "noise"]) == []


def test_a_constant_or_empty_target_is_one_clear_error() -> None:
    assert check_target(_frame({"y": [1, 2, 1]}), "y") is None
    with pytest.raises(DataError, match=r"the target 'y' has one value only \('1' in 3 rows\)"):
        check_and_find_leaks(_frame({"x": [1, 2, 3], "y": [1, 1, 1]}), "y", "regression", ["x"])
    with pytest.raises(DataError, match="has no values"):
        check_and_find_leaks(_frame({"x": [1, 2], "y": [None, None]}), "y", "regression", ["x"])
