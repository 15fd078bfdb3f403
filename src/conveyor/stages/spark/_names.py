"""A column of the user's data, by its exact name.

Spark reads `a.b` in a column name as field `b` of struct `a` and a backtick as quoting: a CSV
header such as `PT08.S1(CO)` or `default.payment.next.month` must reach Spark quoted, with its
own backticks doubled, so that a name is always data and never an expression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["column", "positional"]


def column(name: str) -> Column:
    """`F.col` of the column named exactly `name`."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def positional(frame: DataFrame) -> tuple[DataFrame, list[str]]:
    """`frame` with its columns renamed `__conveyor_c0`, `__conveyor_c1`, ..., and the names they had.

    PySpark's `mapInArrow` and `applyInArrow` look their input columns up by name, unquoted (a
    column `a.b` fails as "`a`.`b` cannot be resolved"): a task gets the positional names and
    gives its batches their own back (`batch.rename_columns(names)`)."""
    names = list(frame.columns)
    return frame.toDF(*[f"__conveyor_c{i}" for i in range(len(names))]), names
