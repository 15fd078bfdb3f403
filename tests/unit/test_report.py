"""Tests of the shared report helpers (conveyor.core.report), and that writing a report
changes no process-wide state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.core.report import (
    axis_label,
    data_uri,
    new_figure,
    png_bytes,
    render_template,
    show_message,
    write_text,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_new_figure_gives_a_grid_of_tidy_axes() -> None:
    fig, axes = new_figure(6, 4, rows=2, cols=3)
    assert len(axes) == 6 and all(ax.figure is fig for ax in axes)
    assert list(fig.get_size_inches()) == [6, 4]
    assert not axes[0].spines["top"].get_visible() and axes[0].spines["left"].get_visible()


def test_png_is_a_png_and_the_same_figure_gives_the_same_bytes() -> None:
    def draw() -> bytes:
        fig, (ax,) = new_figure(3, 2)
        ax.plot([0, 1, 2], [2, 0, 1])
        return png_bytes(fig, dpi=50)

    first = draw()
    assert first.startswith(PNG_SIGNATURE)
    assert draw() == first
    assert b"Software" not in first  # no matplotlib version in the metadata


def test_data_uri_embeds_the_png() -> None:
    fig, (ax,) = new_figure(2, 2)
    show_message(ax, "nothing here")
    assert data_uri(fig, dpi=30).startswith("data:image/png;base64,iVBORw0KGgo")  # base64 of the PNG signature
    assert ax.get_xticks().size == 0 and ax.texts[0].get_text() == "nothing here"


def test_axis_label() -> None:
    assert axis_label(None) == "(null)"
    assert axis_label(3.5) == "3.5"
    assert axis_label("abcdefghij", width=5) == "abcd…"
    assert axis_label("$x$ costs $5") == r"\$x\$ costs \$5"  # no mathtext on user data


HOSTILE = "<script>alert('x')</script> \"q\" {{ 7*7 }} &amp;"


def test_the_page_template_is_self_contained_and_escapes_the_title() -> None:
    """Every report extends core's page: the title (from the data: a project name, a column) is text."""
    page = render_template("conveyor.core", "report.html.j2", title=HOSTILE)
    assert page.startswith("<!DOCTYPE html>")
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;q&#34; {{ 7*7 }} &amp;amp;"
    assert page.count(escaped) == 2  # <title> and <h1>
    assert "<script" not in page and "49" not in page  # not HTML, and not a template either
    assert "font-family:-apple-system,\"Segoe UI\"" in page  # the CSS is the template's, not escaped
    assert "http" not in page and "<link" not in page


def test_the_table_macro_escapes_headers_and_aligns_the_text_columns_left(tmp_path: Path) -> None:
    from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader

    env = Environment(autoescape=True, loader=ChoiceLoader([
        DictLoader({"t": '{% from "report_macros.html.j2" import table %}'
                         '{% call table(headers, left=1) %}<tr><td>{{ cell }}</td></tr>{% endcall %}'}),
        PackageLoader("conveyor.core", "templates")]))
    table = env.get_template("t").render(headers=["name", "a<b", "n"], cell=HOSTILE)
    assert table.startswith('<table><thead><tr><th style="text-align:left">name</th><th>a&lt;b</th><th>n</th>')
    assert table.endswith("<tbody><tr><td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;q&#34; {{ 7*7 }} "
                          "&amp;amp;</td></tr></tbody></table>")


def test_a_name_missing_from_the_context_is_an_error_not_an_empty_string() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError, match="title"):
        render_template("conveyor.core", "report.html.j2")


def test_write_text_creates_the_folder_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.html"
    assert write_text(path, "one") == path
    assert write_text(path, "two é") == path
    assert path.read_text(encoding="utf-8") == "two é"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.html"]  # no temporary file left


def test_importing_core_loads_no_plotting_library() -> None:
    code = """
        import sys, conveyor.core, conveyor.core.report
        print(sorted(m for m in ("matplotlib", "numpy", "polars", "pandas") if m in sys.modules))
    """
    assert _run(code) == "[]"


def test_help_loads_no_matplotlib() -> None:
    code = """
        import sys, runpy
        sys.argv = ["conveyor", "--help"]
        try:
            runpy.run_module("conveyor", run_name="__main__")
        except SystemExit:
            pass
        print("MPL", "matplotlib" in sys.modules)
    """
    assert _run(code).splitlines()[-1] == "MPL False"


@pytest.mark.parametrize("which", ["eda", "drift"])
def test_writing_a_report_leaves_no_global_matplotlib_state(which: str, tmp_path: Path) -> None:
    """No pyplot, no backend chosen, rcParams and warnings filters as they were."""
    code = f"""
        import sys, warnings
        import numpy as np, polars as pl, matplotlib
        import scipy.stats, scipy.spatial.distance  # scipy adds warnings filters of its own on import
        raw = lambda: dict(dict.items(matplotlib.rcParams))  # without resolving the backend
        before, filters = raw(), list(warnings.filters)
        if {which!r} == "eda":
            from conveyor.stages.prep._eda import write_eda_report
            df = pl.DataFrame({{"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None], "y": [1.0, 2.0, 2.0, 5.0]}})
            write_eda_report(df, target="y", task="regression", numeric=["x"], categorical=["c"],
                             path=__import__("pathlib").Path({str(tmp_path)!r}) / "r.html", title="t")
        else:
            from conveyor.stages.monitoring._drift import compute_drift
            from conveyor.stages.monitoring._report import write_drift_report
            ref, cur = {{"x": np.arange(50.0), "c": ["a", "b"] * 25}}, {{"x": np.arange(40.0) + 9, "c": ["a"] * 40}}
            report = compute_drift(ref, cur, numeric=["x"], categorical=["c"])
            write_drift_report(report, ref, cur, numeric=["x"], categorical=["c"],
                               path=__import__("pathlib").Path({str(tmp_path)!r}) / "r.html", title="t")
        print("pyplot", "matplotlib.pyplot" in sys.modules)
        print("rc", raw() == before)
        print("filters", list(warnings.filters) == filters)
    """
    assert _run(code).splitlines() == ["pyplot False", "rc True", "filters True"]
    assert (tmp_path / "r.html").is_file()
