"""Self-contained offline HTML drift report (inline CSS, base64 PNG figures)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._drift import to_float, to_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._drift import DriftReport, DriftThresholds, FeatureDrift

MAX_PLOTS = 12
TOP_LEVELS = 15
REF_COLOUR, CUR_COLOUR = "#4C72B0", "#DD8452"
VERDICT_COLOUR = {"drift": "#c0392b", "no drift": "#27ae60", "insufficient data": "#7f8c8d"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{margin-bottom:.2em} .verdict{display:inline-block;padding:.3em .8em;border-radius:4px;
color:#fff;font-weight:bold;font-size:1.3em} .meta{color:#555;margin:.6em 0 1.4em}
table{border-collapse:collapse;font-size:.9em;margin-bottom:2em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4} td.name,td.txt{text-align:left}
tr.drifted td{background:#fdecea;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;border:1px solid #eee;padding:.5em}
figcaption{font-size:.85em;color:#555;text-align:center}
"""


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    if isinstance(value, float) and 0 < abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    return "&ndash;" if value is None or math.isnan(value) else f"{value:.3g}"


def _pct(value: float) -> str:
    return "&ndash;" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _order_key(f: FeatureDrift) -> tuple[int, float]:
    psi = -1.0 if math.isnan(f.psi) else f.psi
    return (0 if f.drifted else 1, -psi)


def _fig_to_data_uri(fig: Figure) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _numeric_plot(name: str, ref: Any, cur: Any) -> str:
    import matplotlib.pyplot as plt

    r, c = to_float(ref), to_float(cur)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    pooled = np.concatenate([r, c])
    if pooled.size == 0:
        ax.text(0.5, 0.5, "no non-null values", ha="center", va="center", transform=ax.transAxes)
    else:
        distinct = np.unique(pooled)
        if distinct.size <= 30:  # few-valued: one bin per value
            mids = (distinct[1:] + distinct[:-1]) / 2
            step = float(np.min(np.diff(distinct))) if distinct.size > 1 else 1.0
            edges: list[float] = [distinct[0] - step / 2, *mids.tolist(), distinct[-1] + step / 2]
        else:  # 40 bins over the central 99.8% so that outliers do not squash the plot
            lo, hi = np.quantile(pooled, [0.001, 0.999]) if pooled.size > 1000 else (pooled.min(), pooled.max())
            edges = (np.linspace(lo, hi, 41) if hi > lo else np.histogram_bin_edges(pooled, 10)).tolist()
        for data, colour, label in ((r, REF_COLOUR, "reference"), (c, CUR_COLOUR, "current")):
            if data.size:
                ax.hist(data, bins=edges, density=True, alpha=0.5, color=colour, label=f"{label} (n={data.size})")
        ax.legend(fontsize=8)
    ax.set_title(name, fontsize=10)
    ax.set_ylabel("density")
    return _fig_to_data_uri(fig)


def _categorical_plot(name: str, ref: Any, cur: Any) -> str:
    import matplotlib.pyplot as plt

    r, c = to_labels(ref), to_labels(cur)
    levels_r, counts_r = np.unique(r, return_counts=True)
    levels_c, counts_c = np.unique(c, return_counts=True)
    share_r = dict(zip(levels_r.tolist(), (counts_r / max(r.size, 1)).tolist()))
    share_c = dict(zip(levels_c.tolist(), (counts_c / max(c.size, 1)).tolist()))
    levels = sorted(set(share_r) | set(share_c), key=lambda k: -(share_r.get(k, 0) + share_c.get(k, 0)))
    shown = levels[:TOP_LEVELS]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if not shown:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    else:
        x = np.arange(len(shown))
        ax.bar(x - 0.2, [share_r.get(k, 0) for k in shown], 0.4, color=REF_COLOUR, label=f"reference (n={r.size})")
        ax.bar(x + 0.2, [share_c.get(k, 0) for k in shown], 0.4, color=CUR_COLOUR, label=f"current (n={c.size})")
        ax.set_xticks(x)
        ax.set_xticklabels([k if len(k) <= 14 else k[:13] + "…" for k in shown], rotation=45, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    hidden = len(levels) - len(shown)
    ax.set_title(name + (f" (top {TOP_LEVELS}; {hidden} more levels)" if hidden > 0 else ""), fontsize=10)
    ax.set_ylabel("share")
    return _fig_to_data_uri(fig)


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
        f"<td>{f.n_reference}</td>",
        f"<td>{f.n_current}</td>",
        f'<td class="txt">{"yes" if f.drifted else "no"}</td>',
    ]
    cls = ' class="drifted"' if f.drifted else ""
    return f"<tr{cls}>{''.join(cells)}</tr>"


def _table(rows: list[FeatureDrift]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("feature", "kind", "test", "statistic", "p-value", "PSI", "effect",
                  "missing ref", "missing cur", "n ref", "n cur", "drifted")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(_feature_row(f) for f in rows)}</tbody></table>"


def _figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


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
    """Write one offline HTML file describing ``report``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    from ._drift import DriftThresholds

    thr = thresholds or DriftThresholds()
    ordered = sorted(report.features, key=_order_key)
    colour = VERDICT_COLOUR.get(report.verdict, "#7f8c8d")
    n_drifted = sum(f.drifted for f in report.features)
    share = "&ndash;" if math.isnan(report.drifted_share) else f"{100 * report.drifted_share:.0f}%"
    pred_line = ""
    if report.prediction is not None:
        pred_line = f" &middot; prediction drift: <b>{'yes' if report.prediction.drifted else 'no'}</b>"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<span class="verdict" style="background:{colour}">{html.escape(report.verdict.upper())}</span>',
        f'<div class="meta">reference rows: <b>{report.n_reference}</b> &middot; current rows: '
        f"<b>{report.n_current}</b> &middot; drifted features: <b>{n_drifted} / {len(report.features)}</b> "
        f"({share}){pred_line}<br>thresholds: p-value &lt; {thr.p_value:g} and PSI &ge; {thr.psi:g} per feature; "
        f"dataset drift when &ge; {100 * thr.drift_share:.0f}% of features drift, one drifted feature has PSI &ge; {thr.severe_psi:g}, or the prediction drifts; "
        f"at least {thr.min_rows} current rows required.<br>"
        "tests: numeric = two-sample Kolmogorov-Smirnov (asymptotic p), effect = Wasserstein / reference std; "
        "categorical = chi-square homogeneity, effect = Jensen-Shannon distance.</div>",
    ]
    if report.prediction is not None:
        parts += ["<h2>Prediction</h2>", _table([report.prediction])]
    parts += ["<h2>Features</h2>", _table(ordered)]

    figures: list[str] = []
    if report.prediction is not None and prediction is not None:
        plot = _categorical_plot if report.prediction.test == "chi2" else _numeric_plot
        figures.append(_figure(plot("prediction", prediction[0], prediction[1]), "prediction"))
    for f in ordered[:MAX_PLOTS]:
        plot = _categorical_plot if f.test == "chi2" else _numeric_plot
        uri = plot(f.name, reference.get(f.name, []), current.get(f.name, []))
        caption = f"{f.name} (PSI {_fmt(f.psi, 3)}{', drifted' if f.drifted else ''})"
        figures.append(_figure(uri, caption.replace("&ndash;", "n/a")))
    if figures:
        parts += ["<h2>Reference vs current</h2>", f'<div class="plots">{"".join(figures)}</div>']
    parts.append("</body></html>")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
