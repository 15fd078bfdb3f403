"""The EDA report on Apache Spark (`engine: spark`): the same report, its tables from every row by Spark.

What the report counts over every row (the columns table: missing values, distinct values,
min/mean/max, the top level and its share; the missing-values chart; the target checks' class
counts) is computed by Spark, in one aggregation plus one group-by per non-numeric column. What
it draws from a seeded sample (distributions, correlations, mean target per level, the heatmap,
the leak search) is computed by the Polars engine's own code on the very rows the Polars engine
samples: the sample's positions are drawn exactly as `DataFrame.sample(n, seed=0)` draws them
for a frame of that height, and only those rows are read (Polars' streaming engine, one pass).
The report is therefore the Polars engine's, figure for figure, with the driver's memory
bounded by the sample, not by the data.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import Config
from conveyor.stages.spark import column as _col

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import Column, DataFrame

    from conveyor.stages.prep._eda import ColumnStats, EdaSummary, TargetChecks

__all__ = ["summarize_on_spark"]

_LINE = "_line"
_MAX_LEVELS = 1_000  # the classes the target checks count, as the Polars engine


def _default(function: Any, name: str) -> int:
    """A keyword's default in the Polars engine's EDA (the sample sizes): one value, read from there."""
    value: int = inspect.signature(function).parameters[name].default
    return value


def summarize_on_spark(config: Config, clean_path: Path, quarantined: int) -> tuple[EdaSummary, TargetChecks]:
    """The report's summary and target checks of the clean data at `clean_path`, as the Polars engine's."""
    import polars as pl

    from conveyor.stages.prep._eda import summarize_eda, target_checks
    from conveyor.stages.spark import spark_session

    schema = config.schema
    dtypes = pl.scan_parquet(clean_path).collect_schema()
    names = [n for n in dtypes.names() if n != _LINE]
    session = spark_session(config.spark, config.name)
    frame = session.read.parquet(clean_path.resolve().as_uri()).select(*[_col(n) for n in names])
    rows = frame.count()
    plot_rows = _default(summarize_eda, "max_plot_rows")
    leak_rows = _default(target_checks, "max_rows")
    plot_sample, leak_sample = _samples(clean_path, names, rows, plot_rows, leak_rows)
    summary = summarize_eda(plot_sample, target=schema.target, task=schema.task, numeric=schema.numeric(),
                            categorical=schema.categorical(), quarantined=quarantined,
                            max_plot_rows=max(plot_sample.height, 1))
    roles = ({c: "numeric" for c in summary.numeric} | {c: "categorical" for c in summary.categorical}
             | {schema.target: "target"})
    columns = _column_stats(frame, dtypes, names, roles, schema.task, rows)
    missing = [(c.name, 100 * c.missing / max(rows, 1)) for c in columns]
    summary = replace(summary, rows=rows, n_columns=len(names), columns=columns,
                      missing=sorted((p for p in missing if p[1] > 0), key=lambda p: p[1]))
    checks = target_checks(leak_sample, config, max_rows=max(leak_sample.height, 1))
    search = config.training.search
    problems = _target_problems(frame, dtypes, schema.target, schema.task,
                                search.min_folds if search.trials > 0 else 2)
    leaks = checks.leaks if not problems or problems[0].startswith("too few") else []
    return summary, replace(checks, problems=problems, leaks=leaks)


def _positions(rows: int, n: int) -> pl.Series | None:
    """The row positions `DataFrame.sample(n, seed=0)` takes of a frame of `rows` rows (None: every row)."""
    import polars as pl

    if rows <= n:
        return None
    return pl.int_range(0, rows, eager=True, dtype=pl.get_index_type()).sample(n, seed=0)


def _samples(path: Path, names: list[str], rows: int, plot_rows: int, leak_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The plot and leak samples, in the Polars engine's row order, read in one streaming pass."""
    import polars as pl

    plot, leak = _positions(rows, plot_rows), _positions(rows, leak_rows)
    lazy = pl.scan_parquet(path).select(names)
    if plot is None and leak is None:
        everything = lazy.collect()
        return everything, everything
    index = "__conveyor_row"
    wanted = pl.concat([s for s in (plot, leak) if s is not None]).unique()
    picked = (lazy.with_row_index(index).filter(pl.col(index).is_in(wanted.implode()))
              .collect(engine="streaming"))

    def take(positions: pl.Series | None) -> pl.DataFrame:
        if positions is None:
            return lazy.collect()
        order = pl.DataFrame({index: positions})
        return order.join(picked, on=index, how="left", maintain_order="left").drop(index)

    return take(plot), take(leak)


def _column_stats(frame: DataFrame, dtypes: pl.Schema, names: list[str], roles: dict[str, str], task: str,
                  rows: int) -> list[ColumnStats]:
    """The columns table over every row: one aggregation, then one group-by per non-numeric column."""
    from pyspark.sql import functions as F

    from conveyor.stages.prep._eda import ColumnStats

    aggregates: list[Column] = []
    numeric: dict[str, bool] = {}
    for i, name in enumerate(names):
        dtype, role = dtypes[name], roles.get(name, "other")
        column = _col(name)
        missing = column.isNull() | F.isnan(column) if dtype.is_float() else column.isNull()
        aggregates += [F.sum(missing.cast("long")).alias(f"m{i}"), F.count_distinct(column).alias(f"d{i}")]
        numeric[name] = role == "numeric" or (role == "target" and task == "regression") or (
            role == "other" and dtype.is_numeric())
        if numeric[name]:
            value = F.expr(f"try_cast({_sql_name(name)} AS DOUBLE)")
            finite = F.when(~F.isnan(value), value)  # Polars leaves NaN out of min/mean/max (as null)
            aggregates += [F.min(finite).alias(f"lo{i}"), F.avg(finite).alias(f"mean{i}"), F.max(finite).alias(f"hi{i}")]
    totals: dict[str, Any] = frame.agg(*aggregates).collect()[0].asDict() if names else {}
    stats = []
    for i, name in enumerate(names):
        lo = mean = hi = top = None
        if numeric[name]:
            lo, mean, hi = (_float(totals[f"{k}{i}"]) for k in ("lo", "mean", "hi"))
        else:
            levels = _levels(frame, dtypes, name, 1)
            if levels:
                top = (levels[0][0], 100 * levels[0][1] / max(rows, 1))
        stats.append(ColumnStats(name, str(dtypes[name]), roles.get(name, "other"), int(totals[f"m{i}"] or 0),
                                 int(totals[f"d{i}"] or 0), lo, mean, hi, top))
    return stats


def _sql_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _levels(frame: DataFrame, dtypes: pl.Schema, name: str, top: int) -> list[tuple[Any, int]]:
    """The `top` most frequent non-null values and their counts, ties by value, as Python values of
    the column's Polars type (through Arrow, so a time is the Polars engine's time)."""
    import polars as pl
    from pyspark.sql import functions as F

    column = _col(name)
    counts = (frame.where(column.isNotNull()).groupBy(column.alias("v")).agg(F.count(F.lit(1)).alias("n"))
              .orderBy(F.col("n").desc(), F.col("v").asc()).limit(top))
    table = pl.from_arrow(counts.toArrow())
    assert isinstance(table, pl.DataFrame)
    values = table["v"].cast(dtypes[name]).to_list()
    return list(zip(values, (int(n) for n in table["n"].to_list())))


def _target_problems(frame: DataFrame, dtypes: pl.Schema, target: str, task: str, min_class_rows: int) -> list[str]:
    """Why the target cannot be learned, over every row: the Polars engine's checks and words."""
    import polars as pl
    from pyspark.sql import functions as F

    column = _col(target)
    counted = frame.agg(F.count(column).alias("present"), F.min(column).alias("lo"), F.max(column).alias("hi"))
    present, lo, hi = counted.collect()[0]
    if not present:
        return [f"the target {target!r} has no values: nothing to learn"]
    if task == "classification":
        pairs = _levels(frame, dtypes, target, _MAX_LEVELS)
        if dtypes[target].is_numeric() or dtypes[target] == pl.Boolean:
            pairs.sort(key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0))
    else:
        pairs = [(pl.Series([lo]).cast(dtypes[target]).item(), int(present))] if lo == hi else []
    if len(pairs) == 1:
        what = "one class" if task == "classification" else "one value"
        return [f"the target {target!r} has {what} only ({pairs[0][0]!r} in {pairs[0][1]:,} rows): nothing to learn"]
    rare = [f"{v!r}: {n:,}" for v, n in pairs if n < min_class_rows]
    if not rare:
        return []
    return [f"too few rows per class of {target!r} ({', '.join(rare)}); training needs at least {min_class_rows} "
            "of each (training.search.folds): add rows or merge rare classes"]
