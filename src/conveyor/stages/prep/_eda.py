"""Exploratory data analysis report: one self-contained HTML file, viewable offline.

Two steps: ``summarize_eda`` (`_eda_stats`) computes everything the report shows (an
``EdaSummary``: no plotting, no files), ``render_eda_html`` draws its figures (`_eda_plots`) and
renders the page from the Jinja2 templates in ``templates/`` (autoescaped: a column name or value
is never HTML), and ``write_eda_report`` does both and writes the file; ``target_checks``
(`_eda_checks`) adds the "Target checks" section.  Heavy imports (polars, numpy,
matplotlib) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.report import render_template, write_text
from conveyor.stages.prep._eda_checks import TargetChecks, target_checks
from conveyor.stages.prep._eda_plots import (
    correlation_figure,
    feature_figures,
    heatmap_figure,
    level_means_figure,
    missing_figure,
    target_figure,
)
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

def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e9 else f"{value:.4g}"
    return str(value)


def _cards(s: EdaSummary) -> list[tuple[str, str, bool]]:
    """The summary cards: (value, label, warn)."""
    quarantine = "quarantined rows"
    if s.quarantined:  # the share of the input rows that did not make it into the data
        quarantine += f" ({100 * s.quarantined / (s.rows + s.quarantined):.1f}%)"
    cards = [(f"{s.rows:,}", "rows"), (f"{s.n_columns:,}", "columns"), (f"{s.quarantined:,}", quarantine),
             (s.target, "target"), (s.task, "task"), (str(len(s.numeric)), "numeric features"),
             (str(len(s.categorical)), "categorical features")]
    return [(v, k, k == quarantine and bool(s.quarantined)) for v, k in cards]


def _columns(s: EdaSummary) -> list[dict[str, Any]]:
    """The per-column table: each row's cells as text, and whether the column is all missing."""
    rows = []
    for c in s.columns:
        top = None if c.top is None else f"{c.top[0]} ({c.top[1]:.1f}%)"
        cells = [c.name, c.dtype, c.role, f"{c.missing:,}", f"{100 * c.missing / max(s.rows, 1):.1f}%",
                 f"{c.distinct:,}", _fmt(c.minimum), _fmt(c.mean), _fmt(c.maximum), _fmt(top)]
        rows.append({"cells": cells, "warn": bool(c.missing == s.rows and s.rows)})
    return rows


def target_checks_html(checks: TargetChecks) -> str:
    """The "Target checks" section: each leaking feature with its evidence, and target problems."""
    return render_template("conveyor.stages.prep", "eda_checks.html.j2", checks=checks)


def render_eda_html(summary: EdaSummary, title: str, checks: TargetChecks | None = None) -> str:
    """The whole report as one HTML document (figures embedded); writes nothing."""
    figures = {
        "missing": missing_figure(summary), "target": target_figure(summary), "features": feature_figures(summary),
        "correlation": correlation_figure(summary), "level_means": level_means_figure(summary),
        "heatmap": heatmap_figure(summary),
    }
    return render_template("conveyor.stages.prep", "eda.html.j2", title=title, s=summary, checks=checks, cards=_cards(summary),
                           columns=_columns(summary), figures=figures, top_categorical=_TOP_CAT_FEATURES)


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
