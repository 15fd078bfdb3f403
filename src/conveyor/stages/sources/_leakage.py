"""Leakage and target checks for `conveyor init`: the detection (`conveyor.core.leakage`) on a polars frame.

`find_leaks` names the columns that reproduce the target, each with the evidence, so `init`
can propose them for `schema.drop`; `check_target` says why a target cannot be learned at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from conveyor.core.leakage import Leak, LeakInputs
from conveyor.core.leakage import find_leaks as _find

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = ["Leak", "check_and_find_leaks", "check_target", "find_leaks", "leak_inputs"]

LOGGER = logging.getLogger("conveyor.init.leakage")
"""Each leak found by `check_and_find_leaks` is logged here at INFO, with `leak_column` and
`leak_evidence` on the record: `conveyor init` shows them and writes them next to schema.drop."""


def _numeric(frame: pl.DataFrame, name: str) -> np.ndarray | None:
    """The column as floats (missing: NaN), or None if it is not mostly numbers."""
    import numpy as np
    import polars as pl

    series = frame[name]
    values = series if series.dtype.is_numeric() else series.cast(pl.Float64, strict=False)
    present = series.drop_nulls().len()
    if present == 0 or values.drop_nulls().len() < 0.95 * present:
        return None
    out: np.ndarray = np.asarray(values.cast(pl.Float64).fill_null(float("nan")).to_numpy(), dtype=float)
    return out


def leak_inputs(frame: pl.DataFrame, target: str, task: str, columns: list[str]) -> LeakInputs:
    """The arrays leak detection reads: the target, and each of `columns` (filled mask, numbers)."""
    import numpy as np
    import polars as pl

    numeric = {n: v for n in columns if (v := _numeric(frame, n)) is not None}
    return LeakInputs(
        target=target, task=task, labels=np.asarray(frame[target].cast(pl.String).to_list(), dtype=object),
        values=_numeric(frame, target), filled={n: frame[n].is_not_null().to_numpy() for n in columns}, numeric=numeric,
    )


def find_leaks(frame: pl.DataFrame, target: str, task: str, columns: list[str]) -> list[Leak]:
    """Columns among `columns` that reproduce `target`, each with its evidence (first finding per column)."""
    return _find(leak_inputs(frame, target, task, columns))


def check_target(frame: pl.DataFrame, target: str) -> str | None:
    """Why the target cannot be learned at all (empty, constant, one class), or None."""
    present = frame[target].drop_nulls()
    if present.len() == 0:
        return f"the target {target!r} has no values: nothing to learn"
    if present.n_unique() < 2:
        return (f"the target {target!r} has one value only ({present[0]!r} in {present.len()} rows): "
                "nothing to learn; a classifier needs at least two classes")
    return None


def check_and_find_leaks(frame: pl.DataFrame, target: str, task: str, columns: list[str]) -> list[Leak]:
    """`init`'s one call: a target that cannot be learned is a DataError; else the leaks found."""
    from conveyor.core.errors import DataError

    problem = check_target(frame, target)
    if problem is not None:
        raise DataError(problem)
    leaks = find_leaks(frame, target, task, columns)
    for leak in leaks:
        LOGGER.info("%s reproduces the target: %s", leak.column, leak.evidence,
                    extra={"leak_column": leak.column, "leak_evidence": leak.evidence})
    return leaks
