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
    html_page,
    html_table,
    img_tag,
    new_figure,
    png_bytes,
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


def test_img_tag_embeds_the_png_and_escapes_the_alt_text() -> None:
    fig, (ax,) = new_figure(2, 2)
    show_message(ax, "nothing here")
    tag = img_tag(fig, 'a "b" <c>', dpi=30)
    assert tag.startswith('<img src="data:image/png;base64,iVBORw0KGgo')  # base64 of the PNG signature
    assert tag.endswith('alt="a &quot;b&quot; &lt;c&gt;">')
    assert ax.get_xticks().size == 0 and ax.texts[0].get_text() == "nothing here"


def test_axis_label() -> None:
    assert axis_label(None) == "(null)"
    assert axis_label(3.5) == "3.5"
    assert axis_label("abcdefghij", width=5) == "abcd…"
    assert axis_label("$x$ costs $5") == r"\$x\$ costs \$5"  # no mathtext on user data


def test_html_table_escapes_headers_and_aligns_the_text_columns_left() -> None:
    table = html_table(["name", "a<b", "n"], ["<tr><td>x</td><td>1</td><td>2</td></tr>"], left=1)
    assert table.startswith('<table><thead><tr><th style="text-align:left">name</th><th>a&lt;b</th><th>n</th>')
    assert table.endswith("<tbody><tr><td>x</td><td>1</td><td>2</td></tr></tbody></table>")


def test_html_page_is_self_contained_and_escapes_the_title() -> None:
    page = html_page("a <b> & c", "<p>body</p>", css=".x{color:red}")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("a &lt;b&gt; &amp; c") == 2  # <title> and <h1>
    assert ".x{color:red}" in page and "<p>body</p>" in page
    assert "http" not in page and "<script" not in page and "<link" not in page


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
