"""The figures of the EDA report, drawn with matplotlib's object API and returned as PNG data URIs
(the HTML around them is the template's)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from conveyor.core.report import (
    BLUE,
    FONT_SIZE,
    ORANGE,
    RED,
    TITLE_SIZE,
    axis_label,
    data_uri,
    new_figure,
    show_message,
)
from conveyor.stages.prep._eda_stats import EdaSummary, Histogram, LevelCounts

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_GRID_COLS = 4  # small multiples per row
_PER_FIGURE = 16  # feature panels per figure
_DPI = 80


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


def missing_figure(s: EdaSummary) -> str | None:
    """The share of missing values per column, or None when nothing is missing."""
    if not s.missing:
        return None
    fig, (ax,) = new_figure(9, 0.8 + 0.28 * len(s.missing))
    ax.barh([axis_label(c, 30) for c, _ in s.missing], [p for _, p in s.missing], color=RED)
    ax.set_xlabel("% missing")
    ax.set_xlim(0, 100)
    return data_uri(fig, dpi=_DPI)


def target_figure(s: EdaSummary) -> str:
    fig, (ax,) = new_figure(8, 3.2)
    _draw_distribution(ax, s.target_distribution)
    return data_uri(fig, dpi=_DPI)


def feature_figures(s: EdaSummary) -> list[str]:
    """The distribution of every feature, ``_PER_FIGURE`` small multiples per figure."""
    figures = []
    for start in range(0, len(s.features), _PER_FIGURE):
        chunk = s.features[start : start + _PER_FIGURE]
        fig, axes = _grid(len(chunk))
        for ax, dist in zip(axes, chunk):
            _draw_distribution(ax, dist)
        fig.tight_layout()
        figures.append(data_uri(fig, dpi=_DPI))
    return figures


def correlation_figure(s: EdaSummary) -> str | None:
    """Pearson and Spearman of each numeric feature with the target, as paired bars; None without numeric features."""
    if not s.numeric:
        return None
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
    return data_uri(fig, dpi=_DPI)


def level_means_figure(s: EdaSummary) -> str | None:
    """The mean target per level of the categorical features that explain it best."""
    if not s.level_means:
        return None
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
    return data_uri(fig, dpi=_DPI)


def heatmap_figure(s: EdaSummary) -> str | None:
    if s.heatmap is None:
        return None
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
    return data_uri(fig, dpi=_DPI)
