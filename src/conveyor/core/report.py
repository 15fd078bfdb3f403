"""Shared pieces of Conveyor's self-contained HTML reports (EDA, drift).

A report is one HTML file with inline CSS and its figures embedded as base64 PNG: no
JavaScript, no external resource, viewable offline. Its HTML comes from Jinja2 templates with
autoescape (`render_template`): every value from the data is escaped by the template engine,
none by hand. A report's template extends `templates/report.html.j2` here (the page, its title
and the shared CSS, `templates/report.css`) and may import the macros of `report_macros.html.j2`.

Figures are made with matplotlib's object API only (``matplotlib.figure.Figure``), never
pyplot: no backend switch, no global figure registry to leak into, no change to ``rcParams``
or to the warnings filters.  A figure that goes out of scope is simply garbage-collected.
matplotlib is imported inside functions, so importing this module (as ``conveyor --help``
does through core) stays cheap.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BLUE",
    "FONT_SIZE",
    "GREY",
    "ORANGE",
    "RED",
    "TITLE_SIZE",
    "axis_label",
    "data_uri",
    "render_template",
    "new_figure",
    "png_bytes",
    "show_message",
    "write_text",
]

BLUE, ORANGE, RED, GREY = "#4c72b0", "#dd8452", "#c44e52", "#888888"
FONT_SIZE = 9  # tick labels, axis labels, legends
TITLE_SIZE = 10



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


def render_template(
    package: str, name: str, *, filters: Mapping[str, Callable[..., str]] | None = None, **context: Any
) -> str:
    """The template `name` of `<package>/templates/` rendered with `context`; every value is
    autoescaped, and a name the template uses but `context` lacks is an error, not an empty string.
    `filters` adds the package's own formatting filters (text out: the template escapes it)."""
    env = _environment(package)
    env.filters.update(filters or {})
    return env.get_template(name).render(**context)


@functools.cache
def _environment(package: str) -> Environment:
    from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

    loader = ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("conveyor.core", "templates")])
    env = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["thousands"] = lambda value: f"{value:,}"
    return env


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
