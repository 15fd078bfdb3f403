"""The statistics of the EDA report (`summarize_eda`): per-column summaries, distributions, the
target's correlations and level means, as plain data (no plotting, no files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


_TOP_LEVELS = 20  # categorical levels shown per bar chart
_TOP_CAT_FEATURES = 6  # categorical features shown in "mean target per level"
_MAX_HEATMAP = 30  # numeric columns in the correlation heatmap


# --------------------------------------------------------------------------- #
# what the report shows
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ColumnStats:
    """One row of the columns table, over every row of the data."""

    name: str
    dtype: str
    role: str  # "numeric" | "categorical" | "target" | "other"
    missing: int  # nulls, plus NaN in float columns
    distinct: int  # non-null distinct values
    minimum: float | None  # min, mean and max: numeric columns only
    mean: float | None
    maximum: float | None
    top: tuple[Any, float] | None  # the most frequent non-null value and its % of rows; non-numeric only


@dataclass(frozen=True)
class Histogram:
    """A numeric column to plot as a histogram: its finite values in the plot sample."""

    name: str
    values: np.ndarray


@dataclass(frozen=True)
class LevelCounts:
    """A categorical column to plot as bars: its most frequent levels (null included)."""

    name: str
    levels: list[Any]  # numeric levels in natural order, others by frequency
    counts: list[int]
    total_levels: int  # distinct values, null included


@dataclass(frozen=True)
class TargetCorrelation:
    name: str
    pearson: float
    spearman: float


@dataclass(frozen=True)
class LevelMeans:
    """The mean target (or the positive-class rate) per level of one categorical feature."""

    name: str
    levels: list[Any]
    means: list[float | None]  # None: no row of that level has a target
    total_levels: int
    eta: float  # correlation ratio: share of the target's spread explained by the levels


@dataclass(frozen=True)
class EdaSummary:
    """Everything the EDA report shows. Tables use every row, plots the seeded sample."""

    target: str
    task: str
    rows: int
    n_columns: int
    quarantined: int
    numeric: list[str]
    categorical: list[str]
    sample_rows: int
    columns: list[ColumnStats]
    missing: list[tuple[str, float]]  # (column, % missing), columns with any, fewest first
    target_distribution: Histogram | LevelCounts
    features: list[Histogram | LevelCounts]  # numeric then categorical
    target_label: str  # the target, or "<target> = <positive class>" for classification
    correlations: list[TargetCorrelation]  # defined ones, strongest |Pearson| first
    undefined: list[str]  # numeric features with no defined correlation to the target
    target_mean: float  # over the sample, NaN when no row has a target
    level_means: list[LevelMeans]  # the categorical features with the largest eta
    heatmap: tuple[list[str], np.ndarray] | None  # Pearson between numeric features


# --------------------------------------------------------------------------- #
# computing
# --------------------------------------------------------------------------- #
def _floats(s: pl.Series) -> np.ndarray:
    """A float64 numpy view of a column; null, NaN and non-numeric become NaN."""
    import polars as pl

    return s.cast(pl.Float64, strict=False).fill_nan(None).to_numpy().astype("float64")


def _missing(s: pl.Series) -> int:
    """Null count, plus NaN count for float columns."""
    return s.null_count() + (int(s.is_nan().sum()) if s.dtype.is_float() else 0)


def _levels(s: pl.Series, top: int = _TOP_LEVELS) -> tuple[list[Any], list[int]]:
    """The ``top`` most frequent levels (null included), in natural order if numeric."""
    import polars as pl

    vc = (s.alias("v").value_counts(name="n")  # ties broken by value: the same levels every time
          .sort(["n", "v"], descending=[True, False], nulls_last=True).head(top))
    pairs = list(zip(vc["v"].to_list(), vc["n"].to_list()))
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        pairs.sort(key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0))
    return [p[0] for p in pairs], [int(p[1]) for p in pairs]


def _corr(x: np.ndarray, y: np.ndarray, spearman: bool = True) -> tuple[float, float]:
    """Pearson and Spearman on pairwise-complete rows; NaN when undefined."""
    import numpy as np
    import polars as pl

    m = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[m], y[m]
    if xs.size < 3 or xs.std() == 0 or ys.std() == 0:
        return math.nan, math.nan
    pearson = float(np.corrcoef(xs, ys)[0, 1])
    if not spearman:
        return pearson, math.nan
    rx = pl.Series(xs).rank("average").to_numpy()
    ry = pl.Series(ys).rank("average").to_numpy()
    return pearson, float(np.corrcoef(rx, ry)[0, 1])


def _check_roles(df: pl.DataFrame, target: str, task: str, numeric: list[str],
                 categorical: list[str]) -> tuple[list[str], list[str]]:
    """The feature lists without duplicates or the target; raises on a bad task or column."""
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', not {task!r}")
    numeric = [c for c in dict.fromkeys(numeric) if c != target]
    categorical = [c for c in dict.fromkeys(categorical) if c != target and c not in numeric]
    if absent := [c for c in [target, *numeric, *categorical] if c not in df.columns]:
        raise DataError(f"EDA report: column(s) {absent} not in the data; it has {df.columns}")
    return numeric, categorical


def _column_stats(s: pl.Series, role: str, task: str, rows: int) -> ColumnStats:
    import polars as pl

    lo = mean = hi = None
    top = None
    numeric = role == "numeric" or (role == "target" and task == "regression")
    if numeric or (role == "other" and s.dtype.is_numeric()):
        f = s.cast(pl.Float64, strict=False).fill_nan(None)
        lo, mean, hi = f.min(), f.mean(), f.max()
    else:
        levels, counts = _levels(s.drop_nulls(), top=1)
        if levels:
            top = (levels[0], 100 * counts[0] / max(rows, 1))
    return ColumnStats(s.name, str(s.dtype), role, _missing(s), s.drop_nulls().n_unique(),
                       _opt_float(lo), _opt_float(mean), _opt_float(hi), top)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _distribution(s: pl.Series, numeric: bool) -> Histogram | LevelCounts:
    import numpy as np

    if numeric:
        values = _floats(s)
        return Histogram(s.name, values[np.isfinite(values)])
    levels, counts = _levels(s)
    return LevelCounts(s.name, levels, counts, s.n_unique())


def _target_vector(s: pl.Series, task: str) -> tuple[np.ndarray, str]:
    """The target as floats: as-is for regression, a 0/1 indicator for classification
    (positive = the larger class of a binary target, else the most frequent class)."""
    import numpy as np

    if task == "regression":
        return _floats(s), s.name
    classes = s.drop_nulls().unique().sort().to_list()
    if len(classes) == 2:
        pos = classes[1]
    else:
        levels, _ = _levels(s.drop_nulls(), top=1)
        pos = levels[0] if levels else None
    if pos is None:  # no non-null target value at all
        return np.full(s.len(), np.nan), s.name
    return _floats(s == pos), f"{s.name} = {pos}"


def _target_correlations(sample: pl.DataFrame, numeric: list[str],
                         y: np.ndarray) -> tuple[list[TargetCorrelation], list[str]]:
    """Defined correlations, strongest |Pearson| first, and the features without one."""
    pairs = {c: _corr(_floats(sample[c]), y) for c in numeric}
    defined = [TargetCorrelation(c, p, s) for c, (p, s) in pairs.items() if not math.isnan(p)]
    defined.sort(key=lambda t: -abs(t.pearson))
    return defined, [c for c in numeric if math.isnan(pairs[c][0])]


def _level_means(sample: pl.DataFrame, categorical: list[str], y: np.ndarray) -> list[LevelMeans]:
    """Mean target per level of the ``_TOP_CAT_FEATURES`` features with the largest eta."""
    import numpy as np
    import polars as pl

    yall = y[np.isfinite(y)]
    mean = float(yall.mean()) if yall.size else math.nan
    total = float(((yall - mean) ** 2).sum()) if yall.size else 0.0
    out = []
    for c in categorical:
        g = (pl.DataFrame({"v": sample[c], "y": y}).filter(pl.col("y").is_finite())
             .group_by("v").agg(m=pl.col("y").mean(), n=pl.len()))
        between = float((g["n"] * (g["m"] - mean) ** 2).sum()) if yall.size else 0.0
        by_level = dict(zip(g["v"].to_list(), g["m"].to_list()))
        levels, _ = _levels(sample[c])
        means = [_opt_float(by_level.get(v)) for v in levels]
        eta = math.sqrt(between / total) if total > 0 else 0.0
        out.append(LevelMeans(c, levels, means, sample[c].n_unique(), eta))
    return sorted(out, key=lambda m: -m.eta)[:_TOP_CAT_FEATURES]


def _heatmap(sample: pl.DataFrame, numeric: list[str],
             correlations: list[TargetCorrelation]) -> tuple[list[str], np.ndarray]:
    """Pearson between the ``_MAX_HEATMAP`` numeric features most related to the target,
    in their given order; NaN where undefined (1 on the diagonal unless constant)."""
    import numpy as np

    strength = {t.name: abs(t.pearson) for t in correlations}
    keep = set(sorted(numeric, key=lambda c: -strength.get(c, -1.0))[:_MAX_HEATMAP])
    cols = [c for c in numeric if c in keep]
    k, data = len(cols), [_floats(sample[c]) for c in cols]
    mat = np.full((k, k), np.nan)
    for i in range(k):
        finite = data[i][np.isfinite(data[i])]
        mat[i, i] = 1.0 if finite.size and finite.std() > 0 else np.nan
        for j in range(i + 1, k):
            mat[i, j] = mat[j, i] = _corr(data[i], data[j], spearman=False)[0]
    return cols, mat


def summarize_eda(
    df: pl.DataFrame,
    *,
    target: str,
    task: str,
    numeric: list[str],
    categorical: list[str],
    quarantined: int = 0,
    max_plot_rows: int = 50_000,
) -> EdaSummary:
    """Compute what the EDA report shows; no plotting, no files.

    Tables use every row; plots and correlations use a seeded sample of at most
    ``max_plot_rows`` rows.  Raises ``DataError`` if a named column is absent.
    """
    import numpy as np

    numeric, categorical = _check_roles(df, target, task, numeric, categorical)
    roles = {c: "numeric" for c in numeric} | {c: "categorical" for c in categorical} | {target: "target"}
    sample = df.sample(n=max_plot_rows, seed=0) if df.height > max_plot_rows else df
    with np.errstate(all="ignore"):
        y, ylabel = _target_vector(sample[target], task)
        correlations, undefined = _target_correlations(sample, numeric, y)
        finite_y = y[np.isfinite(y)]
        missing = [(c, 100 * _missing(df[c]) / max(df.height, 1)) for c in df.columns]
        return EdaSummary(
            target=target, task=task, rows=df.height, n_columns=df.width, quarantined=quarantined,
            numeric=numeric, categorical=categorical, sample_rows=sample.height,
            columns=[_column_stats(df[c], roles.get(c, "other"), task, df.height) for c in df.columns],
            missing=sorted((p for p in missing if p[1] > 0), key=lambda p: p[1]),
            target_distribution=_distribution(sample[target], task == "regression"),
            features=[_distribution(sample[c], roles[c] == "numeric") for c in numeric + categorical],
            target_label=ylabel, correlations=correlations, undefined=undefined,
            target_mean=float(finite_y.mean()) if finite_y.size else math.nan,
            level_means=_level_means(sample, categorical, y),
            heatmap=_heatmap(sample, numeric, correlations) if len(numeric) >= 2 else None,
        )
