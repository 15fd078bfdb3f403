"""Exploratory data analysis report: one self-contained HTML file, viewable offline.

Two steps: ``summarize_eda`` computes everything the report shows (an ``EdaSummary``: no
plotting, no files), ``render_eda_html`` draws it as HTML with embedded PNG figures, and
``write_eda_report`` does both and writes the file.  Heavy imports (polars, numpy,
matplotlib) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import DataError
from conveyor.core.leakage import Leak, LeakInputs, find_leaks
from conveyor.core.report import (
    BLUE,
    FONT_SIZE,
    ORANGE,
    RED,
    TITLE_SIZE,
    axis_label,
    html_page,
    html_table,
    img_tag,
    new_figure,
    show_message,
    write_text,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from conveyor.core.config import Config

__all__ = [
    "ColumnStats",
    "EdaSummary",
    "Histogram",
    "LevelCounts",
    "LevelMeans",
    "TargetChecks",
    "TargetCorrelation",
    "render_eda_html",
    "summarize_eda",
    "target_checks",
    "target_checks_html",
    "write_eda_report",
]

_GRID_COLS = 4  # small multiples per row
_PER_FIGURE = 16  # feature panels per figure
_TOP_LEVELS = 20  # categorical levels shown per bar chart
_TOP_CAT_FEATURES = 6  # categorical features shown in "mean target per level"
_MAX_HEATMAP = 30  # numeric columns in the correlation heatmap
_DPI = 80
_LEAK_ROWS = 5_000  # leak detection reads a seeded sample of at most this many rows (~50 ms on 1M rows)

_CSS = """
.cards{display:flex;flex-wrap:wrap;gap:10px} .card b{display:block;font-size:1.2em}
.card{background:#f4f6fa;border:1px solid #dde3ee;border-radius:6px;padding:8px 14px}
.card span{color:#666;font-size:.88em}
td:nth-child(-n+3),th:nth-child(-n+3),td:last-child,th:last-child{text-align:left}
"""


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


# --------------------------------------------------------------------------- #
# drawing
# --------------------------------------------------------------------------- #
def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e9 else f"{value:.4g}"
    return str(value)


def _grid(n: int, height: float = 2.4) -> tuple[Figure, list[Axes]]:
    """``n`` small-multiple axes, ``_GRID_COLS`` per row; the spare cells are hidden."""
    rows = max(1, math.ceil(n / _GRID_COLS))
    fig, axes = new_figure(13, height * rows, rows=rows, cols=_GRID_COLS)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _level_title(name: str, shown: int, total: int) -> str:
    return axis_label(name, 30) + (f"  (top {shown} of {total})" if total > shown else "")


def _xticks(ax: Axes, levels: list[Any]) -> None:
    labels = [axis_label(v, 12) for v in levels]
    rot = 90 if len(labels) > 12 else 45 if len(labels) > 6 or max(map(len, labels)) > 4 else 0
    ax.set_xticks(range(len(labels)), labels, rotation=rot, fontsize=7 if rot == 90 else 8,
                  ha="right" if rot == 45 else "center")


def _draw_distribution(ax: Axes, dist: Histogram | LevelCounts) -> None:
    """A histogram of a numeric column or the bars of a categorical one."""
    import numpy as np

    if isinstance(dist, LevelCounts):
        if not dist.levels:
            show_message(ax, "no rows")
        else:
            ax.bar(range(len(dist.levels)), dist.counts, color=ORANGE)
            _xticks(ax, dist.levels)
        ax.set_title(_level_title(dist.name, len(dist.levels), dist.total_levels), fontsize=TITLE_SIZE)
        return
    v = dist.values
    if v.size == 0:
        show_message(ax, "all values missing")
    else:
        lo, hi = float(v.min()), float(v.max())
        integral = hi - lo <= 60 and bool(np.all(v == np.round(v)))
        bins: Any = np.arange(lo - 0.5, hi + 1.5) if integral else int(min(40, 5 + v.size**0.5))
        ax.hist(v, bins=bins, color=BLUE, edgecolor="white", linewidth=0.5)
    ax.set_title(axis_label(dist.name, 40), fontsize=TITLE_SIZE)


def _cards_html(s: EdaSummary) -> str:
    quarantine = "quarantined rows"
    if s.quarantined:  # the share of the input rows that did not make it into the data
        quarantine += f" ({100 * s.quarantined / (s.rows + s.quarantined):.1f}%)"
    cards = [(f"{s.rows:,}", "rows"), (f"{s.n_columns:,}", "columns"), (f"{s.quarantined:,}", quarantine),
             (s.target, "target"), (s.task, "task"), (str(len(s.numeric)), "numeric features"),
             (str(len(s.categorical)), "categorical features")]
    esc = html.escape
    out = ['<h2>Summary</h2><div class="cards">' + "".join(
        f"<div class='card{' warn' if k == quarantine and s.quarantined else ''}'><b>{esc(v)}</b><span>{esc(k)}</span></div>"
        for v, k in cards) + "</div>"]
    if s.sample_rows < s.rows:
        out.append(f"<p class='note'>Plots and correlations use a random sample of "
                   f"{s.sample_rows:,} rows (seed 0); the tables use all {s.rows:,} rows.</p>")
    return "\n".join(out)


def _columns_html(s: EdaSummary) -> str:
    rows = []
    for c in s.columns:
        top = None if c.top is None else f"{c.top[0]} ({c.top[1]:.1f}%)"
        cells = [c.name, c.dtype, c.role, f"{c.missing:,}", f"{100 * c.missing / max(s.rows, 1):.1f}%",
                 f"{c.distinct:,}", _fmt(c.minimum), _fmt(c.mean), _fmt(c.maximum), _fmt(top)]
        cls = ' class="warn"' if c.missing == s.rows and s.rows else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    headers = ("column", "dtype", "role", "missing", "missing %", "distinct", "min", "mean", "max", "top value")
    return "<h2>Columns</h2>" + html_table(headers, rows, left=0)


def _missing_html(s: EdaSummary) -> str:
    if not s.missing:
        return "<h2>Missing values</h2><p>No missing values.</p>"
    fig, (ax,) = new_figure(9, 0.8 + 0.28 * len(s.missing))
    ax.barh([axis_label(c, 30) for c, _ in s.missing], [p for _, p in s.missing], color=RED)
    ax.set_xlabel("% missing")
    ax.set_xlim(0, 100)
    return "<h2>Missing values</h2>" + img_tag(fig, "missing values per column", dpi=_DPI)


def _target_html(s: EdaSummary) -> str:
    fig, (ax,) = new_figure(8, 3.2)
    _draw_distribution(ax, s.target_distribution)
    return f"<h2>Target: {html.escape(s.target)}</h2>" + img_tag(fig, f"distribution of {s.target}", dpi=_DPI)


def _features_html(s: EdaSummary) -> str:
    parts = ["<h2>Feature distributions</h2>" + ("" if s.features else "<p>No features.</p>")]
    for start in range(0, len(s.features), _PER_FIGURE):
        chunk = s.features[start : start + _PER_FIGURE]
        fig, axes = _grid(len(chunk))
        for ax, dist in zip(axes, chunk):
            _draw_distribution(ax, dist)
        fig.tight_layout()
        parts.append(img_tag(fig, "feature distributions", dpi=_DPI))
    return "\n".join(parts)


def _correlation_html(s: EdaSummary) -> str:
    """Pearson and Spearman of each numeric feature with the target, as paired bars."""
    parts = [f"<h2>Correlation with the target ({html.escape(s.target_label)})</h2>"]
    if not s.numeric:
        return parts[0]
    ok = s.correlations
    fig, (ax,) = new_figure(9, 1.0 + 0.36 * max(len(ok), 1))
    if ok:
        import numpy as np

        pos = np.arange(len(ok))[::-1]
        ax.barh(pos + 0.2, [t.pearson for t in ok], 0.4, color=BLUE, label="Pearson")
        ax.barh(pos - 0.2, [t.spearman for t in ok], 0.4, color=ORANGE, label="Spearman")
        ax.set_yticks(pos, [axis_label(t.name, 30) for t in ok])
        ax.axvline(0, color="#444", lw=0.8)
        lim = max(abs(v) for t in ok for v in (t.pearson, t.spearman) if not math.isnan(v))
        lim = min(1.0, max(0.1, 1.15 * lim))
        ax.set_xlim(-lim, lim)
        ax.legend(loc="lower right", fontsize=FONT_SIZE)
    else:
        show_message(ax, "no defined correlation (constant or missing values)")
    parts.append(img_tag(fig, "correlation of numeric features with the target", dpi=_DPI))
    if s.undefined:
        parts.append("<p class='note'>Undefined (constant, all missing or too few rows): "
                     + html.escape(", ".join(s.undefined)) + "</p>")
    return "\n".join(parts)


def _level_means_html(s: EdaSummary) -> str:
    """The mean target per level of the categorical features that explain it best."""
    if not s.level_means:
        return ""
    what = "Mean" if s.task == "regression" else "Rate of"
    head = (f"<h3>{what} {html.escape(s.target_label)} per level (top {_TOP_CAT_FEATURES} "
            "categorical features by correlation ratio η)</h3>")
    fig, axes = _grid(len(s.level_means), height=2.6)
    for ax, m in zip(axes, s.level_means):
        if all(v is None for v in m.means):
            show_message(ax, "no data")
        else:
            ax.bar(range(len(m.levels)), [math.nan if v is None else v for v in m.means], color=BLUE)
            ax.axhline(s.target_mean, color=RED, ls="--", lw=1)
            _xticks(ax, m.levels)
        ax.set_title(f"{_level_title(m.name, len(m.levels), m.total_levels)}  η={m.eta:.2f}", fontsize=TITLE_SIZE)
    fig.tight_layout()
    return head + img_tag(fig, "mean target per level", dpi=_DPI)


def _heatmap_html(s: EdaSummary) -> str:
    if s.heatmap is None:
        return ""
    import matplotlib
    import numpy as np

    cols, mat = s.heatmap
    k = len(cols)
    fig, (ax,) = new_figure(2.5 + 0.42 * k, 1.8 + 0.38 * k)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=-1, vmax=1)
    ax.set_xticks(range(k), [axis_label(c, 20) for c in cols], rotation=60, ha="right")
    ax.set_yticks(range(k), [axis_label(c, 20) for c in cols])
    for i, j in np.argwhere(np.isfinite(mat)) if k <= 15 else ():
        ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if abs(mat[i, j]) > 0.6 else "#222")
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=FONT_SIZE)
    head = f"<h2>Correlation between numeric features (Pearson, {k} columns)</h2>"
    return head + img_tag(fig, "correlation heatmap", dpi=_DPI)


def target_checks_html(checks: TargetChecks) -> str:
    """The "Target checks" section: each leaking feature with its evidence, and target problems."""
    esc = html.escape
    parts = ["<h2>Target checks</h2>"]
    parts += [f"<p class='warn'>{esc(problem)}</p>" for problem in checks.problems]
    if checks.leaks:
        parts.append(f"<p class='warn'>{len(checks.leaks)} feature(s) reproduce the target {esc(checks.target)} "
                     "(known only after it): a model using them is useless in serving; move them to schema.drop.</p>")
        rows = [f"<tr class='leak'><td>{esc(leak.column)}</td><td>{esc(leak.evidence)}</td></tr>" for leak in checks.leaks]
        parts.append(html_table(("column", "evidence"), rows, left=2))
    else:
        parts.append(f"<p>No feature reproduces the target (identities, single-feature scores, filled only with "
                     f"the target; {len(checks.checked)} features on {checks.sample_rows:,} rows).</p>")
    if checks.dropped:
        parts.append("<p class='note'>Left out by schema.drop: " + esc(", ".join(checks.dropped)) + ".</p>")
    return "\n".join(parts)


def render_eda_html(summary: EdaSummary, title: str, checks: TargetChecks | None = None) -> str:
    """The whole report as one HTML document (figures embedded); writes nothing."""
    sections = (_cards_html, _columns_html, _missing_html, _target_html, _features_html,
                _correlation_html, _level_means_html, _heatmap_html)
    parts = [part for f in sections if (part := f(summary))]
    if checks is not None:
        parts.insert(1, target_checks_html(checks))  # right after the summary cards
    return html_page(title, "\n".join(parts), css=_CSS)


def write_eda_report(
    df: pl.DataFrame,
    *,
    target: str,
    task: str,
    numeric: list[str],
    categorical: list[str],
    path: Path,
    title: str,
    quarantined: int = 0,
    max_plot_rows: int = 50_000,
    checks: TargetChecks | None = None,
) -> Path:
    """Write a self-contained HTML exploratory-data-analysis report and return its path.

    Tables use every row; plots and correlations use a seeded sample of at most
    ``max_plot_rows`` rows; ``checks`` (from ``target_checks``) adds the "Target checks"
    section.  Raises ``DataError`` if a named column is absent.
    """
    summary = summarize_eda(df, target=target, task=task, numeric=numeric, categorical=categorical,
                            quarantined=quarantined, max_plot_rows=max_plot_rows)
    return write_text(Path(path), render_eda_html(summary, title, checks))
