"""Exploratory data analysis report: one self-contained HTML file, viewable offline.

Two steps: ``summarize_eda`` computes everything the report shows (an ``EdaSummary``: no
plotting, no files), ``render_eda_html`` draws it as HTML with embedded PNG figures, and
``write_eda_report`` does both and writes the file.  Heavy imports (polars, numpy,
matplotlib) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from conveyor.stages.prep._eda_checks import TargetChecks, target_checks
from conveyor.stages.prep._eda_stats import (
    _TOP_CAT_FEATURES,
    ColumnStats,
    EdaSummary,
    Histogram,
    LevelCounts,
    LevelMeans,
    TargetCorrelation,
    summarize_eda,
)

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
_DPI = 80
_CSS = """
.cards{display:flex;flex-wrap:wrap;gap:10px} .card b{display:block;font-size:1.2em}
.card{background:#f4f6fa;border:1px solid #dde3ee;border-radius:6px;padding:8px 14px}
.card span{color:#666;font-size:.88em}
td:nth-child(-n+3),th:nth-child(-n+3),td:last-child,th:last-child{text-align:left}
"""


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
