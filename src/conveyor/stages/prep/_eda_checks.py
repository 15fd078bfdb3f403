"""The target checks of the EDA report: a target that cannot be learned from, and inputs that leak it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.core.errors import DataError
from conveyor.core.leakage import Leak, LeakInputs, find_leaks
from conveyor.stages.prep._eda_stats import _floats, _levels

if TYPE_CHECKING:
    import polars as pl

    from conveyor.core.config import Config


_LEAK_ROWS = 5_000  # leak detection reads a seeded sample of at most this many rows (~50 ms on 1M rows)


@dataclass(frozen=True)
class TargetChecks:
    """The report's "Target checks": features that reproduce the target (with the evidence, from
    `conveyor.core.leakage`, as `conveyor init` finds them) and why the target cannot be learned."""

    target: str
    leaks: list[Leak]
    problems: list[str]  # a constant target, one class, too few rows of a class
    checked: list[str]  # the features searched for leaks
    dropped: list[str]  # schema.drop: left out before this report
    sample_rows: int  # rows the leak detection read


def _leak_inputs(sample: pl.DataFrame, target: str, task: str, columns: list[str]) -> LeakInputs:
    """The arrays leak detection reads, from typed columns: numbers (bool as 0/1) and filled masks."""
    import polars as pl

    def numeric(s: pl.Series) -> bool:
        return s.dtype.is_numeric() or s.dtype == pl.Boolean

    y = sample[target]
    return LeakInputs(
        target=target, task=task, labels=y.cast(pl.String).to_numpy().astype(object),
        values=_floats(y) if numeric(y) else None,
        filled={c: sample[c].is_not_null().to_numpy() for c in columns},
        numeric={c: _floats(sample[c]) for c in columns if numeric(sample[c])},
    )


def _target_problems(y: pl.Series, task: str, min_class_rows: int) -> list[str]:
    """A target that cannot be learned: no values, one value, too few rows of a class (all rows)."""
    present = y.drop_nulls()
    name = y.name
    if present.len() == 0:
        return [f"the target {name!r} has no values: nothing to learn"]
    if task == "classification":
        levels, counts = _levels(present, top=1_000)
    else:  # min == max: one pass, no hashing of a million floats
        levels, counts = ([present[0]], [present.len()]) if present.min() == present.max() else ([], [])
    if len(levels) == 1:
        what = "one class" if task == "classification" else "one value"
        return [f"the target {name!r} has {what} only ({levels[0]!r} in {counts[0]:,} rows): nothing to learn"]
    rare = [f"{v!r}: {n:,}" for v, n in zip(levels, counts) if n < min_class_rows]
    if not rare:
        return []
    return [f"too few rows per class of {name!r} ({', '.join(rare)}); training needs at least {min_class_rows} "
            "of each (training.search.folds): add rows or merge rare classes"]


def target_checks(df: pl.DataFrame, config: Config, *, max_rows: int = _LEAK_ROWS) -> TargetChecks:
    """Leaks among the schema's features and target problems, for the report's "Target checks".

    The leak detection reads a seeded sample of at most ``max_rows`` rows (an identity or a
    near-perfect score shows on any large sample); the target problems count every row.
    """
    import numpy as np

    schema = config.schema
    target, task = schema.target, schema.task
    if target not in df.columns:
        raise DataError(f"EDA report: the target {target!r} is not in the data; it has {df.columns}")
    columns = [c for c in schema.features() if c in df.columns and c != target]
    search = config.training.search
    problems = _target_problems(df[target], task, search.min_folds if search.trials > 0 else 2)
    sample = df.sample(n=max_rows, seed=0) if df.height > max_rows else df
    leaks: list[Leak] = []
    if not problems or problems[0].startswith("too few"):  # a constant target reproduces nothing
        with np.errstate(all="ignore"):
            leaks = find_leaks(_leak_inputs(sample, target, task, columns))
    return TargetChecks(target, leaks, problems, columns, list(schema.drop), sample.height)
