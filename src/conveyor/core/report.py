"""Shared pieces of Conveyor's self-contained HTML reports (EDA, drift).

A report is one HTML file with inline CSS and its figures embedded as base64 PNG: no
JavaScript, no external resource, viewable offline.

Figures are made with matplotlib's object API only (``matplotlib.figure.Figure``), never
pyplot: no backend switch, no global figure registry to leak into, no change to ``rcParams``
or to the warnings filters.  A figure that goes out of scope is simply garbage-collected.
matplotlib is imported inside functions, so importing this module (as ``conveyor --help``
does through core) stays cheap.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BASE_CSS",
    "BLUE",
    "FONT_SIZE",
    "GREY",
    "ORANGE",
    "RED",
    "TITLE_SIZE",
    "axis_label",
    "data_uri",
    "html_page",
    "html_table",
    "img_tag",
    "new_figure",
    "png_bytes",
    "show_message",
    "write_text",
]

BLUE, ORANGE, RED, GREY = "#4c72b0", "#dd8452", "#c44e52", "#888888"
FONT_SIZE = 9  # tick labels, axis labels, legends
TITLE_SIZE = 10

BASE_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1150px;margin:24px auto;padding:0 16px;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #4c72b0;padding-bottom:6px}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;font-size:.88em;width:100%} tr:hover td{background:#fafbfd}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:right}
th{background:#f4f6fa;position:sticky;top:0}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.note{color:#666;font-size:.88em} .warn{color:#b03a2e}
"""


def new_figure(width: float, height: float, *, rows: int = 1, cols: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of ``width`` x ``height`` inches with a ``rows`` x ``cols`` grid of tidy axes
    (row-major); nothing global is touched. ``set_title`` resets the title's size to the
    rcParams default, so pass ``fontsize=TITLE_SIZE`` with it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes: list[Axes] = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=FONT_SIZE)
        ax.xaxis.label.set_fontsize(FONT_SIZE)
        ax.yaxis.label.set_fontsize(FONT_SIZE)
    return fig, axes


def png_bytes(fig: Figure, *, dpi: int = 80) -> bytes:
    """The figure as PNG bytes, cropped to its content; no software version in the metadata,
    so the same figure gives the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def data_uri(fig: Figure, *, dpi: int = 80) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi=dpi)).decode("ascii")


def img_tag(fig: Figure, alt: str, *, dpi: int = 80) -> str:
    """An ``<img>`` element embedding the figure, with an escaped ``alt`` text."""
    return f'<img src="{data_uri(fig, dpi=dpi)}" alt="{html.escape(alt)}">'


def show_message(ax: Axes, message: str) -> None:
    """Replace a plot that has nothing to draw by a grey message, without ticks."""
    ax.text(0.5, 0.5, message, ha="center", va="center", color=GREY, fontsize=FONT_SIZE, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def axis_label(value: Any, width: int = 18) -> str:
    """Text safe for a matplotlib label: ``None`` is '(null)', long text is cut with '…',
    and '$' is escaped (it would start mathtext, which fails on arbitrary user data)."""
    text = "(null)" if value is None else str(value)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")


def html_table(headers: Sequence[str], rows: Iterable[str], *, left: int = 1) -> str:
    """A table of pre-rendered ``<tr>`` rows under escaped ``headers``; the first ``left``
    headers are left-aligned (text columns), the others right-aligned (numbers)."""
    head = "".join(
        f'<th style="text-align:left">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html_page(title: str, body: str, *, css: str = "") -> str:
    """A whole HTML document: ``BASE_CSS`` plus ``css`` inline, the escaped ``title`` as
    ``<title>`` and ``<h1>``, then ``body`` (already HTML)."""
    esc = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc}</title><style>{BASE_CSS}{css}</style></head>"
        f"<body><h1>{esc}</h1>\n{body}\n</body></html>\n"
    )


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, creating its folder; the file is replaced whole,
    so a reader never sees half a report, and two writers never share a temporary file (each
    writes its own, uniquely named, then renames it over ``path``). Returns ``path``."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is as readable as any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
