"""Self-contained offline HTML drift report (inline CSS, base64 PNG figures).

``render_drift_html`` builds the page (no files); ``write_drift_report`` writes it.  The
plot data (histogram edges, level shares) come from pure helpers, so they can be tested
without drawing.
"""

from __future__ import annotations

import html
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
    html_page,
    html_table,
    new_figure,
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

_CSS = """
.verdict{display:inline-block;padding:.3em .8em;border-radius:4px;color:#fff;font-weight:bold;font-size:1.3em}
.meta{color:#555;margin:.6em 0 1.4em}
td.name,td.txt,th:last-child{text-align:left}
tr.drifted td{background:#fdecea;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;border:1px solid #eee;padding:.5em}
figcaption{font-size:.85em;color:#555;text-align:center}
"""


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    if isinstance(value, float) and 0 < abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _fmt_p(value: float | None) -> str:
    return "&ndash;" if value is None or math.isnan(value) else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


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


def _figure_html(uri: str, caption: str) -> str:
    alt = html.escape(caption)
    return f'<figure><img src="{uri}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


# --------------------------------------------------------------------------- #
# the page
# --------------------------------------------------------------------------- #
def _feature_row(f: FeatureDrift) -> str:
    cells = [
        f'<td class="name">{html.escape(f.name)}</td>',
        f'<td class="txt">{html.escape(f.kind)}</td>',
        f'<td class="txt">{html.escape(f.test)}</td>',
        f"<td>{_fmt(f.statistic)}</td>",
        f"<td>{_fmt_p(f.p_value)}</td>",
        f"<td>{_fmt(f.psi)}</td>",
        f"<td>{_fmt(f.effect)}</td>",
        f"<td>{_pct(f.reference_missing)}</td>",
        f"<td>{_pct(f.current_missing)}</td>",
        f"<td>{f.n_reference:,}</td>",
        f"<td>{f.n_current:,}</td>",
        f'<td class="txt">{"yes" if f.drifted else "no"}</td>',
        f'<td class="txt">{"<br>".join(html.escape(r.detail) for r in f.rules)}</td>',
    ]
    cls = ' class="drifted"' if f.drifted else ""
    return f"<tr{cls}>{''.join(cells)}</tr>"


def _table(rows: list[FeatureDrift]) -> str:
    headers = ("feature", "kind", "test", "statistic", "p-value", "PSI", "effect",
               "missing ref", "missing cur", "n ref", "n cur", "drifted", "rules fired")
    return html_table(headers, (_feature_row(f) for f in rows), left=3)


def _verdict_html(report: DriftReport, thr: DriftThresholds) -> str:
    """The verdict badge, the counts, and the rules that made the verdict."""
    colour = VERDICT_COLOUR.get(report.verdict, "#7f8c8d")
    n_drifted = sum(f.drifted for f in report.features)
    share = "&ndash;" if math.isnan(report.drifted_share) else f"{100 * report.drifted_share:.0f}%"
    pred = "" if report.prediction is None else (
        f" &middot; prediction drift: <b>{'yes' if report.prediction.drifted else 'no'}</b>")
    return (
        f'<span class="verdict" style="background:{colour}">{html.escape(report.verdict.upper())}</span>'
        f'<div class="meta">reference rows: <b>{report.n_reference:,}</b> &middot; current rows: '
        f"<b>{report.n_current:,}</b> &middot; drifted features: <b>{n_drifted} / {len(report.features)}</b> "
        f"({share}){pred}{_reasons_html(report)}<br>thresholds: p-value &lt; {thr.p_value:g} and PSI &ge; "
        f"{thr.psi:g} per feature, or the same test with Wasserstein / reference std &ge; {thr.wasserstein:g} "
        f"(numeric, KS: location, spread, shape) or Jensen-Shannon &ge; {thr.js:g} (categorical, chi-square); "
        f"one value's share up &ge; {100 * thr.point_mass:g} points (numeric); "
        f"levels never seen in the reference &ge; {100 * thr.unseen:g}% of rows beyond the expected (categorical); "
        f"share of nulls changed &ge; {100 * thr.missing:g} points; a field missing from traffic.<br>"
        f"dataset drift when &ge; {100 * thr.drift_share:.0f}% of features drift, one feature's data broke "
        f"(missing, unseen, schema) or has PSI &ge; {thr.severe_psi:g}, a field is new in traffic, or the "
        f"prediction drifts; at least {thr.min_rows} current rows required.</div>"
    )


def _reasons_html(report: DriftReport) -> str:
    """Why the verdict is what it is, and the fields that changed."""
    items = [html.escape(r) for r in report.reasons]
    if report.schema.missing:
        items.append("missing in traffic: " + html.escape(", ".join(report.schema.missing)))
    return "" if not items else "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _plots_html(report: DriftReport, ordered: list[FeatureDrift], reference: Mapping[str, Any],
                current: Mapping[str, Any], prediction: tuple[np.ndarray, np.ndarray] | None) -> str:
    """Reference against current for the prediction and the first ``MAX_PLOTS`` features."""
    figures: list[str] = []
    if report.prediction is not None and prediction is not None:
        figures.append(_figure_html(_plot(report.prediction, *prediction), "prediction"))
    for f in ordered[:MAX_PLOTS]:
        uri = _plot(f, reference.get(f.name, []), current.get(f.name, []))
        psi = "n/a" if math.isnan(f.psi) else _fmt(f.psi, 3)
        figures.append(_figure_html(uri, f"{f.name} (PSI {psi}{', drifted' if f.drifted else ''})"))
    if not figures:
        return ""
    more = len(ordered) - MAX_PLOTS
    note = f"<p class='note'>The {MAX_PLOTS} most drifted features are plotted; {more} more are in the table.</p>"
    return "<h2>Reference vs current</h2>" + (note if more > 0 else "") + f'<div class="plots">{"".join(figures)}</div>'


def render_drift_html(
    report: DriftReport,
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    *,
    title: str,
    prediction: tuple[np.ndarray, np.ndarray] | None = None,
    thresholds: DriftThresholds | None = None,
) -> str:
    """The drift report as one HTML document (figures embedded); writes nothing."""
    from ._drift import DriftThresholds

    ordered = sorted(report.features, key=_order_key)
    parts = [_verdict_html(report, thresholds or DriftThresholds())]
    if report.prediction is not None:
        parts += ["<h2>Prediction</h2>", _table([report.prediction])]
    parts += ["<h2>Features</h2>", _table(ordered), _plots_html(report, ordered, reference, current, prediction)]
    return html_page(title, "\n".join(parts), css=_CSS)


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


def performance_svg(performance: Performance, width: int = 640, height: int = 220) -> str:
    """The primary metric per window as an inline SVG line plot, the test score a dashed line across it.

    Windows without a score (too few labels) are gaps; each point's tooltip gives its window and count.
    """
    from html import escape

    points = [(i, w) for i, w in enumerate(performance.windows) if w.value is not None]
    if not points:
        return "<p>No window has enough labeled predictions to score (monitoring.min_rows).</p>"
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

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(performance.metric)} per window">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
             'fill="none" stroke="#ccc"/>']
    for v in (low + pad, high - pad):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.3g}</text>')
    if performance.test_value is not None:
        ty = y(performance.test_value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#d62728" '
                     f'stroke-dasharray="6 4"><title>test score {performance.test_value:.4f}</title></line>')
        parts.append(f'<text x="{width - right - 4}" y="{ty - 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#d62728">test {performance.test_value:.3g}</text>')
    segments: list[list[str]] = [[]]
    previous = None
    for i, w in points:
        if previous is not None and i != previous + 1:
            segments.append([])
        segments[-1].append(f"{x(i):.1f},{y(w.value):.1f}" if w.value is not None else "")
        previous = i
    for segment in segments:
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for i, w in points:
        if w.value is not None:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(w.value):.1f}" r="3" fill="#1f77b4"><title>'
                         f'{escape(w.start)}: {performance.metric} {w.value:.4f} on {w.n_labeled} labels'
                         '</title></circle>')
    first, last = performance.windows[0].start[:16], performance.windows[-1].start[:16]
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{escape(first)}</text>')
    if len(performance.windows) > 1:
        parts.append(f'<text x="{width - right}" y="{height - 8}" font-size="11" text-anchor="end">{escape(last)}</text>')
    parts.append("</svg>")
    return "".join(parts)
