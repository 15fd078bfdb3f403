"""Exploratory data analysis report: one self-contained HTML file, viewable offline.

Plots are matplotlib figures rendered to PNG and embedded as base64 data URIs; there is
no JavaScript and no external resource.  Heavy imports (polars, numpy, matplotlib) happen
inside ``write_eda_report`` so importing this module is cheap.
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["write_eda_report"]

_GRID_COLS = 4  # small multiples per row
_PER_FIGURE = 16  # feature panels per figure
_TOP_LEVELS = 20  # categorical levels shown per bar chart
_TOP_CAT_FEATURES = 6  # categorical features shown in "mean target per level"
_MAX_HEATMAP = 30  # numeric columns in the correlation heatmap
_DPI = 80
_BLUE, _ORANGE = "#4c72b0", "#dd8452"
_STYLE: Any = {"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
               "axes.spines.right": False, "figure.max_open_warning": 0}

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1150px;margin:24px auto;padding:0 16px;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #4c72b0;padding-bottom:6px}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px} .card b{display:block;font-size:1.2em}
.card{background:#f4f6fa;border:1px solid #dde3ee;border-radius:6px;padding:8px 14px}
.card span,.note{color:#666;font-size:.88em} .warn{color:#b03a2e}
table{border-collapse:collapse;font-size:.88em;width:100%} tr:hover td{background:#fafbfd}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:right}
th{background:#f4f6fa;position:sticky;top:0}
td:nth-child(-n+3),th:nth-child(-n+3),td:last-child,th:last-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:8px 0}
"""


def _lbl(value: Any, width: int = 18) -> str:
    """A matplotlib-safe label: '$' would start mathtext, long text is cut."""
    text = "(null)" if value is None else str(value)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e9 else f"{value:.4g}"
    return str(value)


def _img(fig: Figure, alt: str) -> str:
    """Render a figure to an embedded PNG and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


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

    vc = s.alias("v").value_counts(sort=True, name="n").head(top)
    pairs = list(zip(vc["v"].to_list(), vc["n"].to_list()))
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        pairs.sort(key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0))
    return [p[0] for p in pairs], [int(p[1]) for p in pairs]


def _empty(ax: Axes, msg: str) -> None:
    ax.text(0.5, 0.5, msg, ha="center", va="center", color="#888", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _hist(ax: Axes, values: np.ndarray, title: str) -> None:
    import numpy as np

    v = values[np.isfinite(values)]
    if v.size == 0:
        _empty(ax, "all values missing")
    else:
        lo, hi = float(v.min()), float(v.max())
        integral = hi - lo <= 60 and bool(np.all(v == np.round(v)))
        bins: Any = np.arange(lo - 0.5, hi + 1.5) if integral else int(min(40, 5 + v.size**0.5))
        ax.hist(v, bins=bins, color=_BLUE, edgecolor="white", linewidth=0.5)
    ax.set_title(_lbl(title, 40))


def _xticks(ax: Axes, levels: list[Any]) -> None:
    labels = [_lbl(v, 12) for v in levels]
    rot = 90 if len(labels) > 12 else 45 if len(labels) > 6 or max(map(len, labels)) > 4 else 0
    ax.set_xticks(range(len(labels)), labels, rotation=rot, fontsize=7 if rot == 90 else 8,
                  ha="right" if rot == 45 else "center")


def _level_title(s: pl.Series, shown: int) -> str:
    total = s.n_unique()
    return _lbl(s.name, 30) + (f"  (top {shown} of {total})" if total > shown else "")


def _bars(ax: Axes, s: pl.Series) -> None:
    levels, counts = _levels(s)
    if not levels:
        _empty(ax, "no rows")
    else:
        ax.bar(range(len(levels)), counts, color=_ORANGE)
        _xticks(ax, levels)
    ax.set_title(_level_title(s, len(levels)))


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


def _grid(n: int, height: float = 2.4) -> tuple[Figure, list[Axes]]:
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / _GRID_COLS))
    fig, axes = plt.subplots(rows, _GRID_COLS, figsize=(13, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _column_rows(df: pl.DataFrame, roles: dict[str, str], task: str) -> str:
    import polars as pl

    n = max(df.height, 1)
    out = []
    for name in df.columns:
        s = df[name]
        role = roles.get(name, "other")
        miss = _missing(s)
        distinct = s.drop_nulls().n_unique()
        lo = mean = hi = top = None
        numeric = role == "numeric" or (role == "target" and task == "regression")
        if numeric or (role == "other" and s.dtype.is_numeric()):
            f = s.cast(pl.Float64, strict=False).fill_nan(None)
            lo, mean, hi = f.min(), f.mean(), f.max()
        else:
            levels, counts = _levels(s.drop_nulls(), top=1)
            if levels:
                top = f"{levels[0]} ({100 * counts[0] / n:.1f}%)"
        cls = ' class="warn"' if miss == df.height and df.height else ""
        cells = [name, str(s.dtype), role, f"{miss:,}", f"{100 * miss / n:.1f}%", f"{distinct:,}",
                 _fmt(lo), _fmt(mean), _fmt(hi), _fmt(top)]
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("column", "dtype", "role", "missing", "missing %",
                                             "distinct", "min", "mean", "max", "top value"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


def _target_corr_section(sample: pl.DataFrame, numeric: list[str], categorical: list[str],
                         y: np.ndarray, ylabel: str, task: str) -> tuple[str, dict[str, float]]:
    """Bar charts of feature-target association; returns HTML and |Pearson| per feature."""
    import matplotlib.pyplot as plt
    import numpy as np
    import polars as pl

    parts = [f"<h2>Correlation with the target ({html.escape(ylabel)})</h2>"]
    corr = {c: _corr(_floats(sample[c]), y) for c in numeric}
    ok = sorted((c for c in numeric if not math.isnan(corr[c][0])), key=lambda c: -abs(corr[c][0]))
    if numeric:
        fig, ax = plt.subplots(figsize=(9, 1.0 + 0.36 * max(len(ok), 1)))
        if ok:
            pos = np.arange(len(ok))[::-1]
            ax.barh(pos + 0.2, [corr[c][0] for c in ok], 0.4, color=_BLUE, label="Pearson")
            ax.barh(pos - 0.2, [corr[c][1] for c in ok], 0.4, color=_ORANGE, label="Spearman")
            ax.set_yticks(pos, [_lbl(c, 30) for c in ok])
            ax.axvline(0, color="#444", lw=0.8)
            lim = max(abs(v) for c in ok for v in corr[c] if not math.isnan(v))
            ax.set_xlim(-min(1.0, max(0.1, 1.15 * lim)), min(1.0, max(0.1, 1.15 * lim)))
            ax.legend(loc="lower right")
        else:
            _empty(ax, "no defined correlation (constant or missing values)")
        parts.append(_img(fig, "correlation of numeric features with the target"))
        if undefined := [c for c in numeric if c not in ok]:
            parts.append("<p class='note'>Undefined (constant, all missing or too few rows): "
                         + html.escape(", ".join(undefined)) + "</p>")
    if categorical:
        what = "Mean" if task == "regression" else "Rate of"
        parts.append(f"<h3>{what} {html.escape(ylabel)} per level (top {_TOP_CAT_FEATURES} "
                     "categorical features by correlation ratio η)</h3>")
        yall = y[np.isfinite(y)]
        mean = float(yall.mean()) if yall.size else math.nan
        total = float(((yall - mean) ** 2).sum()) if yall.size else 0.0
        stats: dict[str, tuple[dict[Any, float], float]] = {}
        for c in categorical:
            g = (pl.DataFrame({"v": sample[c], "y": y}).filter(pl.col("y").is_finite())
                 .group_by("v").agg(m=pl.col("y").mean(), n=pl.len()))
            between = float((g["n"] * (g["m"] - mean) ** 2).sum()) if yall.size else 0.0
            eta = math.sqrt(between / total) if total > 0 else 0.0
            stats[c] = (dict(zip(g["v"].to_list(), g["m"].to_list())), eta)
        top = sorted(categorical, key=lambda c: -stats[c][1])[:_TOP_CAT_FEATURES]
        fig, axes = _grid(len(top), height=2.6)
        for ax, c in zip(axes, top):
            levels, _ = _levels(sample[c])
            vals = [stats[c][0].get(v) for v in levels]
            if all(v is None for v in vals):
                _empty(ax, "no data")
            else:
                ax.bar(range(len(levels)), [np.nan if v is None else v for v in vals], color=_BLUE)
                ax.axhline(mean, color="#c44e52", ls="--", lw=1)
                _xticks(ax, levels)
            ax.set_title(f"{_level_title(sample[c], len(levels))}  η={stats[c][1]:.2f}")
        fig.tight_layout()
        parts.append(_img(fig, "mean target per level"))
    return "\n".join(parts), {c: abs(corr[c][0]) if c in ok else -1.0 for c in numeric}


def _heatmap_section(sample: pl.DataFrame, cols: list[str]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    k, data = len(cols), [_floats(sample[c]) for c in cols]
    mat = np.full((k, k), np.nan)
    for i in range(k):
        mat[i, i] = 1.0 if np.nanstd(data[i]) > 0 else np.nan
        for j in range(i + 1, k):
            mat[i, j] = mat[j, i] = _corr(data[i], data[j], spearman=False)[0]
    fig, ax = plt.subplots(figsize=(2.5 + 0.42 * k, 1.8 + 0.38 * k))
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=-1, vmax=1)
    ax.set_xticks(range(k), [_lbl(c, 20) for c in cols], rotation=60, ha="right")
    ax.set_yticks(range(k), [_lbl(c, 20) for c in cols])
    for i, j in np.argwhere(np.isfinite(mat)) if k <= 15 else ():
        ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if abs(mat[i, j]) > 0.6 else "#222")
    fig.colorbar(im, ax=ax, shrink=0.8)
    head = f"<h2>Correlation between numeric features (Pearson, {k} columns)</h2>"
    return head + _img(fig, "correlation heatmap")


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
) -> Path:
    """Write a self-contained HTML exploratory-data-analysis report and return its path.

    Tables use every row; plots and correlations use a seeded sample of at most
    ``max_plot_rows`` rows.  Raises ``DataError`` if a named column is absent.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', not {task!r}")
    numeric = [c for c in dict.fromkeys(numeric) if c != target]
    categorical = [c for c in dict.fromkeys(categorical) if c != target and c not in numeric]
    if absent := [c for c in [target, *numeric, *categorical] if c not in df.columns]:
        raise DataError(f"EDA report: column(s) {absent} not in the data; it has {df.columns}")
    roles = {c: "numeric" for c in numeric} | {c: "categorical" for c in categorical}
    roles[target] = "target"
    sample = df.sample(n=max_plot_rows, seed=0) if df.height > max_plot_rows else df
    esc = html.escape
    cards = [(f"{df.height:,}", "rows"), (f"{df.width:,}", "columns"),
             (f"{quarantined:,}", "quarantined rows"), (target, "target"), (task, "task"),
             (str(len(numeric)), "numeric features"),
             (str(len(categorical)), "categorical features")]
    parts = ['<h2>Summary</h2><div class="cards">' + "".join(
        f"<div class='card'><b>{esc(v)}</b><span>{esc(k)}</span></div>" for v, k in cards)
        + "</div>"]
    if sample.height < df.height:
        parts.append(f"<p class='note'>Plots and correlations use a random sample of "
                     f"{sample.height:,} rows (seed 0); the tables use all {df.height:,} rows.</p>")
    parts.append("<h2>Columns</h2>" + _column_rows(df, roles, task))
    with plt.rc_context(_STYLE), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        parts.append("<h2>Missing values</h2>")
        miss = [(c, 100 * _missing(df[c]) / max(df.height, 1)) for c in df.columns]
        miss = sorted((p for p in miss if p[1] > 0), key=lambda p: p[1])
        if not miss:
            parts.append("<p>No missing values.</p>")
        else:
            fig, ax = plt.subplots(figsize=(9, 0.8 + 0.28 * len(miss)))
            ax.barh([_lbl(c, 30) for c, _ in miss], [p for _, p in miss], color="#c44e52")
            ax.set_xlabel("% missing")
            ax.set_xlim(0, 100)
            parts.append(_img(fig, "missing values per column"))

        parts.append(f"<h2>Target: {esc(target)}</h2>")
        fig, ax = plt.subplots(figsize=(8, 3.2))
        if task == "regression":
            _hist(ax, _floats(sample[target]), target)
        else:
            _bars(ax, sample[target])
        parts.append(_img(fig, f"distribution of {target}"))

        features = numeric + categorical
        parts.append("<h2>Feature distributions</h2>" + ("" if features else "<p>No features.</p>"))
        for start in range(0, len(features), _PER_FIGURE):
            chunk = features[start : start + _PER_FIGURE]
            fig, axes = _grid(len(chunk))
            for ax, col in zip(axes, chunk):
                if roles[col] == "numeric":
                    _hist(ax, _floats(sample[col]), col)
                else:
                    _bars(ax, sample[col])
            fig.tight_layout()
            parts.append(_img(fig, "feature distributions"))

        y, ylabel = _target_vector(sample[target], task)
        section, strength = _target_corr_section(sample, numeric, categorical, y, ylabel, task)
        parts.append(section)
        if len(numeric) >= 2:  # the _MAX_HEATMAP most target-related, in their given order
            keep = set(sorted(numeric, key=lambda c: -strength[c])[:_MAX_HEATMAP])
            parts.append(_heatmap_section(sample, [c for c in numeric if c in keep]))

    doc = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
           f"<body><h1>{esc(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
