"""Self-contained offline HTML drift report (inline CSS, base64 PNG figures).

``render_drift_html`` builds the page (no files) from the Jinja2 templates in ``templates/``
(autoescaped: a feature name or value is never HTML); ``write_drift_report`` writes it.  The
plot data (histogram edges, level shares) and the geometry of the performance chart come from
pure helpers, so they can be tested without drawing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.report import (
    BLUE,
    ORANGE,
    TITLE_SIZE,
    axis_label,
    data_uri,
    new_figure,
    render_template,
    show_message,
    write_text,
)

from ._stats import NULL_LEVEL, level_counts, to_float

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._drift import DriftReport, DriftThresholds, FeatureDrift
    from ._labels import Performance

__all__ = ["histogram_edges", "level_shares", "render_drift_html", "write_drift_report"]

MAX_PLOTS = 12
TOP_LEVELS = 15
REF_COLOUR, CUR_COLOUR = BLUE, ORANGE
VERDICT_COLOUR = {"drift": "#c0392b", "no drift": "#27ae60", "insufficient data": "#7f8c8d"}
_DPI = 90
_LEGEND_SIZE = 8



def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and 0 < abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _fmt_p(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _order_key(f: FeatureDrift) -> tuple[int, float]:
    psi = -1.0 if math.isnan(f.psi) else f.psi
    return (0 if f.drifted else 1, -psi)


# --------------------------------------------------------------------------- #
# plot data (pure)
# --------------------------------------------------------------------------- #
def histogram_edges(pooled: np.ndarray) -> list[float]:
    """Shared bin edges for the reference and current histograms of a numeric column.

    Few-valued (<= 30 distinct): one bin centred on each value.  Otherwise 40 bins over the
    central 99.8% of the pooled values (all of them when <= 1000), so outliers do not squash
    the plot.  ``pooled`` must be finite and non-empty.
    """
    import numpy as np

    distinct = np.unique(pooled)
    if distinct.size <= 30:
        mids = (distinct[1:] + distinct[:-1]) / 2
        step = float(np.min(np.diff(distinct))) if distinct.size > 1 else 1.0
        return [float(distinct[0] - step / 2), *mids.tolist(), float(distinct[-1] + step / 2)]
    lo, hi = np.quantile(pooled, [0.001, 0.999]) if pooled.size > 1000 else (pooled.min(), pooled.max())
    edges = np.linspace(lo, hi, 41) if hi > lo else np.histogram_bin_edges(pooled, 10)
    return [float(e) for e in edges]


def _level_order(level: str) -> tuple[int, float, str]:
    try:
        return (0, float(level), level) if level != NULL_LEVEL else (2, 0.0, level)
    except ValueError:
        return (1, 0.0, level)


def level_shares(reference: Any, current: Any, top: int = TOP_LEVELS) -> tuple[list[str], list[float], list[float], int]:
    """The ``top`` levels with the largest combined share, their shares in the reference and
    in the current data, and how many levels were left out.  Levels are compared as labels
    (``to_labels``); numeric levels are shown in numeric order, then the others, then nulls."""
    counts_r, counts_c = level_counts(reference), level_counts(current)
    n_r, n_c = max(sum(counts_r.values()), 1), max(sum(counts_c.values()), 1)
    share_r = {k: v / n_r for k, v in counts_r.items()}
    share_c = {k: v / n_c for k, v in counts_c.items()}
    levels = sorted(set(share_r) | set(share_c), key=lambda k: (-(share_r.get(k, 0) + share_c.get(k, 0)), k))
    shown = sorted(levels[:top], key=_level_order)
    return shown, [share_r.get(k, 0.0) for k in shown], [share_c.get(k, 0.0) for k in shown], len(levels) - len(shown)


# --------------------------------------------------------------------------- #
# drawing
# --------------------------------------------------------------------------- #
def _numeric_plot(name: str, ref: Any, cur: Any) -> Figure:
    import numpy as np

    r, c = to_float(ref), to_float(cur)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    fig, (ax,) = new_figure(5, 3.2)
    pooled = np.concatenate([r, c])
    if pooled.size == 0:
        show_message(ax, "no non-null values")
    else:
        edges = histogram_edges(pooled)
        for data, colour, label in ((r, REF_COLOUR, "reference"), (c, CUR_COLOUR, "current")):
            if data.size:
                ax.hist(data, bins=edges, density=True, alpha=0.5, color=colour, label=f"{label} (n={data.size:,})")
        _legend(ax)
    ax.set_title(axis_label(name, 40), fontsize=TITLE_SIZE)
    ax.set_ylabel("density")
    return fig


def _categorical_plot(name: str, ref: Any, cur: Any) -> Figure:
    shown, share_r, share_c, hidden = level_shares(ref, cur)
    fig, (ax,) = new_figure(5, 3.2)
    if not shown:
        show_message(ax, "no values")
    else:
        x = range(len(shown))
        n_r, n_c = sum(level_counts(ref).values()), sum(level_counts(cur).values())
        ax.bar([i - 0.2 for i in x], share_r, 0.4, color=REF_COLOUR, label=f"reference (n={n_r:,})")
        ax.bar([i + 0.2 for i in x], share_c, 0.4, color=CUR_COLOUR, label=f"current (n={n_c:,})")
        _level_ticks(ax, shown)
        _legend(ax)
    more = f" (top {TOP_LEVELS}; {hidden} more levels)" if hidden > 0 else ""
    ax.set_title(axis_label(name, 40) + more, fontsize=TITLE_SIZE)
    ax.set_ylabel("share")
    return fig


def _legend(ax: Axes) -> None:
    """The legend, in headroom added above the tallest bar so that it hides no data."""
    ax.set_ylim(top=ax.get_ylim()[1] * 1.3)
    ax.legend(fontsize=_LEGEND_SIZE, loc="upper right", ncols=2, frameon=False)


def _level_ticks(ax: Axes, levels: list[str]) -> None:
    labels = [axis_label(k, 14) for k in levels]
    if len(labels) <= 8 and max(map(len, labels)) <= 4:
        ax.set_xticks(range(len(labels)), labels)
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)


def _plot(f: FeatureDrift, ref: Any, cur: Any) -> str:
    """The figure of one column as a data URI: bars for a chi-square column, else histograms."""
    draw = _categorical_plot if f.test == "chi2" else _numeric_plot
    return data_uri(draw(f.name, ref, cur), dpi=_DPI)


def _figures(report: DriftReport, ordered: list[FeatureDrift], reference: Mapping[str, Any],
             current: Mapping[str, Any], prediction: tuple[np.ndarray, np.ndarray] | None) -> list[tuple[str, str]]:
    """(data URI, caption) of the prediction and the first ``MAX_PLOTS`` features, reference against current."""
    figures: list[tuple[str, str]] = []
    if report.prediction is not None and prediction is not None:
        figures.append((_plot(report.prediction, *prediction), "prediction"))
    for f in ordered[:MAX_PLOTS]:
        uri = _plot(f, reference.get(f.name, []), current.get(f.name, []))
        psi = "n/a" if math.isnan(f.psi) else _fmt(f.psi, 3)
        figures.append((uri, f"{f.name} (PSI {psi}{', drifted' if f.drifted else ''})"))
    return figures


def render_drift_html(
    report: DriftReport,
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    *,
    title: str,
    prediction: tuple[np.ndarray, np.ndarray] | None = None,
    thresholds: DriftThresholds | None = None,
    performance: Performance | None = None,
    unreadable: Sequence[str] = (),
    unreadable_shown: int = 20,
) -> str:
    """The drift report as one HTML document (figures embedded); writes nothing. `performance`
    adds the scores of labeled predictions, `unreadable` the lines of the log that were not records
    (the first `unreadable_shown` named, the others counted)."""
    from ._drift import DriftThresholds

    ordered = sorted(report.features, key=_order_key)
    reasons = list(report.reasons)
    if report.schema.missing:
        reasons.append("missing in traffic: " + ", ".join(report.schema.missing))
    return render_template(
        "conveyor.stages.monitoring", "drift.html.j2",
        filters={"stat": _fmt, "p_value": _fmt_p, "percent": _pct},
        title=title, report=report, thr=thresholds or DriftThresholds(), ordered=ordered, reasons=reasons,
        colour=VERDICT_COLOUR.get(report.verdict, "#7f8c8d"), n_drifted=sum(f.drifted for f in report.features),
        share="–" if math.isnan(report.drifted_share) else f"{100 * report.drifted_share:.0f}%",
        figures=_figures(report, ordered, reference, current, prediction), max_plots=MAX_PLOTS,
        more=len(ordered) - MAX_PLOTS, performance=performance,
        chart=None if performance is None else performance_chart(performance),
        unreadable=list(unreadable), max_shown=unreadable_shown,
    )


def write_drift_report(
    report: DriftReport,
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    *,
    numeric: list[str],
    categorical: list[str],
    path: Path,
    title: str,
    prediction: tuple[np.ndarray, np.ndarray] | None = None,
    thresholds: DriftThresholds | None = None,
) -> Path:
    """Write one offline HTML file describing ``report``; returns its path.

    ``numeric`` and ``categorical`` are accepted for the callers' sake: each column is drawn
    after the test that ``report`` ran on it (histograms for KS, bars for chi-square).
    """
    text = render_drift_html(report, reference, current, title=title, prediction=prediction, thresholds=thresholds)
    return write_text(Path(path), text)


def performance_chart(performance: Performance, width: int = 640, height: int = 220) -> dict[str, Any]:
    """The geometry of the performance chart (`templates/performance.svg.j2`): the primary metric per
    window as points and line segments (a window without a score breaks the line), the test score's
    height, the axis labels. No points: nothing to draw."""
    points = [(i, w) for i, w in enumerate(performance.windows) if w.value is not None]
    if not points:
        return {"points": []}
    values = [w.value for _, w in points if w.value is not None]
    if performance.test_value is not None:
        values.append(performance.test_value)
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    left, right, top, bottom = 56, 12, 12, 28
    n = max(len(performance.windows) - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * (i / n if len(performance.windows) > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (high - v) / (high - low)

    segments: list[list[tuple[float, float]]] = [[]]
    previous = None
    for i, w in points:
        if previous is not None and i != previous + 1:
            segments.append([])
        if w.value is not None:
            segments[-1].append((x(i), y(w.value)))
        previous = i
    return {
        "width": width, "height": height, "left": left, "top": top, "right_x": width - right,
        "plot_width": width - left - right, "plot_height": height - top - bottom,
        "y_labels": [{"value": v, "y": y(v) + 4} for v in (low + pad, high - pad)],
        "test_y": None if performance.test_value is None else y(performance.test_value),
        "segments": segments,
        "points": [{"x": x(i), "y": y(w.value), "window": w} for i, w in points if w.value is not None],
        "first": performance.windows[0].start[:16],
        "last": performance.windows[-1].start[:16] if len(performance.windows) > 1 else None,
    }
