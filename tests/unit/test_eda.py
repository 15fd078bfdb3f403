"""Tests of the exploratory-data-analysis HTML report (conveyor.stages.prep._eda)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conveyor.core.config import Config
from conveyor.core.errors import DataError
from conveyor.stages.prep._eda import (
    EdaSummary,
    Histogram,
    LevelCounts,
    summarize_eda,
    target_checks,
    target_checks_html,
    write_eda_report,
)

IMG = '<img src="data:image/png;base64,'
ROW = re.compile(r"<tr[^>]*>((?:<td>.*?</td>)+)</tr>")
CELL = re.compile(r"<td>(.*?)</td>")


def column_table(text: str) -> dict[str, list[str]]:
    """The per-column table of a report: column name -> its (unescaped) cells."""
    rows = [[html.unescape(c) for c in CELL.findall(m.group(1))] for m in ROW.finditer(text)]
    return {r[0]: r for r in rows}


def img_count(text: str) -> int:
    return text.count(IMG)


@pytest.fixture
def messy() -> pl.DataFrame:
    """40 rows: nulls, a NaN, a constant, an all-null column, string and int categoricals."""
    rng = np.random.default_rng(0)
    n = 40
    a = rng.normal(size=n).tolist()
    a[3] = a[10] = a[20] = None
    a[5] = float("nan")
    color = rng.choice(["red", "green", "blue"], n).tolist()
    color[0] = color[1] = None
    return pl.DataFrame({
        "a": pl.Series(a, dtype=pl.Float64),
        "b": rng.integers(0, 100, n),
        "const": [7.0] * n,
        "empty": pl.Series([None] * n, dtype=pl.Float64),
        "color": color,
        "lvl": rng.integers(1, 5, n),
        "y": rng.normal(10, 2, n),
    })


def report(df: pl.DataFrame, tmp_path: Path, **kw: object) -> str:
    args: dict[str, object] = {"target": "y", "task": "regression", "numeric": ["a", "b", "const", "empty"],
                               "categorical": ["color", "lvl"], "title": "test report"}
    args.update(kw)
    out = write_eda_report(df, path=tmp_path / "sub" / "eda.html", **args)  # type: ignore[arg-type]  # the test passes keywords as a dict
    assert out == tmp_path / "sub" / "eda.html"
    assert out.is_file()
    return out.read_text(encoding="utf-8")


def assert_offline(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()


def test_messy_regression_report(messy: pl.DataFrame, tmp_path: Path) -> None:
    text = report(messy, tmp_path, quarantined=3)
    assert_offline(text)
    # missing chart, target, one feature grid (6 <= 16), target correlation,
    # mean target per level, numeric heatmap
    assert img_count(text) == 6
    assert "No missing values" not in text
    table = column_table(text)
    assert list(table) == messy.columns
    expected_missing = {"a": 4, "b": 0, "const": 0, "empty": 40, "color": 2, "lvl": 0, "y": 0}
    for name, miss in expected_missing.items():
        assert table[name][3] == str(miss), name
        assert table[name][4] == f"{100 * miss / 40:.1f}%", name
    assert table["a"][2] == "numeric" and table["color"][2] == "categorical"
    assert table["y"][2] == "target"
    assert table["const"][5] == "1"  # distinct
    assert table["const"][6] == table["const"][8] == "7"  # min == max
    assert table["empty"][6] == "–"  # no min for an all-null column
    assert table["color"][9] == "blue (35.0%)"  # blue and red tie at 14 of 40: the smaller value, every time
    assert "<div class='card warn'><b>3</b><span>quarantined rows (7.0%)</span>" in text  # 3 of 43 input rows
    assert ">40</b><span>rows" in text
    # the constant and all-null columns have no defined correlation and are named as such
    assert re.search(r"Undefined[^<]*const, empty", text)


def test_no_missing_says_so(tmp_path: Path) -> None:
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["p", "q", "p", "q"], "y": [1.0, 3.0, 2.0, 5.0]})
    text = report(df, tmp_path, numeric=["x"], categorical=["c"])
    assert "No missing values" in text
    assert "<div class='card'><b>0</b><span>quarantined rows</span>" in text  # no share, no warning
    # target, features, target correlation, mean per level; no missing chart, no heatmap (1 numeric)
    assert img_count(text) == 4


def test_binary_classification_with_string_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 200
    x = rng.normal(size=n)
    df = pl.DataFrame({
        "x": x,
        "z": rng.normal(size=n),
        "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], n),
        "label": np.where(x + rng.normal(scale=0.5, size=n) > 0, "yes", "no"),
    })
    text = report(df, tmp_path, target="label", task="classification", numeric=["x", "z"],
                  categorical=["city"])
    assert_offline(text)
    assert "No missing values" in text
    assert img_count(text) == 5  # target bars, features, correlation, rate per level, heatmap
    assert "label = yes" in text  # the positive class of a binary target is the larger one
    table = column_table(text)
    assert table["label"][2] == "target"
    assert table["label"][6] == "–"  # no mean for a class label, but a top value
    assert re.match(r"(yes|no) \(\d+\.\d%\)", table["label"][9])


def test_multiclass_int_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    df = pl.DataFrame({"x": rng.normal(size=90), "k": rng.integers(0, 3, 90)})
    text = report(df, tmp_path, target="k", task="classification", numeric=["x"], categorical=[])
    assert img_count(text) == 3  # target, features, correlation


def test_no_numeric_features(messy: pl.DataFrame, tmp_path: Path) -> None:
    text = report(messy, tmp_path, numeric=[], categorical=["color", "lvl"])
    # missing chart, target, feature grid, mean target per level: no numeric charts
    assert img_count(text) == 4
    assert "Correlation between numeric features" not in text


def test_no_features_at_all(messy: pl.DataFrame, tmp_path: Path) -> None:
    text = report(messy.select("y"), tmp_path, numeric=[], categorical=[])
    assert img_count(text) == 1  # the target only
    assert "No features." in text


def test_five_rows(tmp_path: Path) -> None:
    df = pl.DataFrame({
        "n": [1.5, None, 2.5, 2.5, 9.0],
        "one": [3, 3, 3, 3, 3],
        "s": ["a", "b", None, "a", "c"],
        "y": [0, 1, 0, 1, 1],
    })
    text = report(df, tmp_path, target="y", task="classification", numeric=["n", "one"],
                  categorical=["s"])
    assert_offline(text)
    assert img_count(text) == 6  # missing, target, features, correlation, rate per level, heatmap
    table = column_table(text)
    assert (table["n"][3], table["s"][3], table["one"][3]) == ("1", "1", "0")


def test_empty_frame(tmp_path: Path) -> None:
    df = pl.DataFrame(schema={"x": pl.Float64, "c": pl.String, "y": pl.Float64})
    text = report(df, tmp_path, numeric=["x"], categorical=["c"])
    assert img_count(text) == 4


def test_features_spread_over_several_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    df = pl.DataFrame({f"f{i}": rng.normal(size=50) for i in range(20)} | {"y": rng.normal(size=50)})
    text = report(df, tmp_path, numeric=[f"f{i}" for i in range(20)], categorical=[])
    # target, 2 feature grids (16 + 4), correlation, heatmap
    assert img_count(text) == 5


def test_names_are_escaped(tmp_path: Path) -> None:
    name = "<b>a&b $x$</b>"
    df = pl.DataFrame({name: [1.0, 2.0, 3.0, 5.0], "c": ["<i>", "x", "<i>", "y"], "y": [1.0, 2.0, 2.5, 4.0]})
    text = report(df, tmp_path, numeric=[name], categorical=["c"], title="t <&>")
    assert name not in text and "<i>" not in text and "t <&>" not in text
    assert html.escape(name) in text and "t &lt;&amp;&gt;" in text
    assert name in column_table(text)


def test_large_frame_is_sampled_but_tables_use_all_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 3000
    df = pl.DataFrame({"x": rng.normal(size=n), "c": rng.integers(0, 4, n), "y": rng.normal(size=n)})
    df = df.with_columns(pl.when(pl.int_range(n) < 1234).then(None).otherwise(pl.col("x")).alias("x"))
    text = report(df, tmp_path, numeric=["x"], categorical=["c"], max_plot_rows=500)
    assert "random sample of 500 rows" in text
    assert column_table(text)["x"][3] == "1,234"
    assert ">3,000</b><span>rows" in text


def test_bad_arguments(messy: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        report(messy, tmp_path, numeric=["a", "nope"])
    with pytest.raises(ValueError, match="task"):
        report(messy, tmp_path, task="ranking")


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, conveyor.stages.prep._eda; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- #
# summarize_eda: the numbers behind the report, without drawing or files
# --------------------------------------------------------------------------- #
def summarize(df: pl.DataFrame, **kw: object) -> EdaSummary:
    args: dict[str, object] = {"target": "y", "task": "regression", "numeric": ["a", "b", "const", "empty"],
                               "categorical": ["color", "lvl"]}
    args.update(kw)
    return summarize_eda(df, **args)  # type: ignore[arg-type]  # the test passes keywords as a dict


def test_summary_of_the_messy_frame(messy: pl.DataFrame) -> None:
    s = summarize(messy, quarantined=3)
    assert (s.rows, s.n_columns, s.quarantined, s.sample_rows) == (40, 7, 3, 40)
    cols = {c.name: c for c in s.columns}
    assert [c.name for c in s.columns] == messy.columns
    assert (cols["a"].missing, cols["empty"].missing, cols["color"].missing) == (4, 40, 2)
    assert cols["const"].minimum == cols["const"].maximum == cols["const"].mean == 7.0
    assert cols["empty"].minimum is None and cols["empty"].distinct == 0
    assert cols["color"].top is not None and cols["color"].minimum is None
    top_value, top_share = cols["color"].top
    assert top_share == pytest.approx(100 * int((messy["color"] == top_value).sum()) / 40)
    assert s.missing == [("color", 5.0), ("a", 10.0), ("empty", 100.0)]  # fewest missing first
    assert [type(f) for f in s.features] == [Histogram] * 4 + [LevelCounts] * 2
    a = s.features[0]
    assert isinstance(a, Histogram) and a.values.size == 36 and np.isfinite(a.values).all()
    assert isinstance(s.target_distribution, Histogram) and s.target_label == "y"
    assert s.undefined == ["const", "empty"]
    assert {t.name for t in s.correlations} == {"a", "b"}
    strengths = [abs(t.pearson) for t in s.correlations]
    assert strengths == sorted(strengths, reverse=True)


def test_correlations_level_means_and_eta_have_known_values() -> None:
    df = pl.DataFrame({
        "x": [1.0, 2.0, 3.0, 4.0],
        "neg": [8.0, 6.0, 4.0, 2.0],
        "c": ["a", "a", "b", "b"],
        "noise": ["p", "q", "q", "p"],
        "y": [1.0, 3.0, 5.0, 7.0],
    })
    s = summarize(df, numeric=["x", "neg"], categorical=["noise", "c"])
    assert [(t.name, t.pearson, t.spearman) for t in s.correlations] == [
        ("x", pytest.approx(1.0), pytest.approx(1.0)), ("neg", pytest.approx(-1.0), pytest.approx(-1.0))]
    assert s.target_mean == 4.0
    # c explains y best: means 2 and 6 around 4; eta^2 = (2*4 + 2*4) / (9+1+1+9) = 0.8
    assert [m.name for m in s.level_means] == ["c", "noise"]
    c = s.level_means[0]
    assert (c.levels, c.means, c.total_levels) == (["a", "b"], [2.0, 6.0], 2)
    assert c.eta == pytest.approx(0.8**0.5)
    assert s.level_means[1].eta == pytest.approx(0.0)  # p and q both average 4
    assert s.heatmap is not None
    names, mat = s.heatmap
    assert names == ["x", "neg"] and mat.tolist() == [[1.0, pytest.approx(-1.0)], [pytest.approx(-1.0), 1.0]]


def test_summary_of_a_binary_classification_target() -> None:
    df = pl.DataFrame({"x": [0.1, 0.2, 0.9, 0.8, 0.7], "label": ["no", "no", "yes", "yes", "yes"]})
    s = summarize(df, target="label", task="classification", numeric=["x"], categorical=[])
    assert s.target_label == "label = yes"  # the larger class of a binary target is the positive one
    assert s.target_mean == pytest.approx(0.6)  # the positive rate
    target = s.target_distribution
    assert isinstance(target, LevelCounts) and dict(zip(target.levels, target.counts)) == {"yes": 3, "no": 2}
    assert s.heatmap is None and s.level_means == []
    assert s.correlations[0].pearson > 0.9


def test_level_counts_keep_the_top_levels_in_natural_order() -> None:
    df = pl.DataFrame({"k": [3, 3, 1, 1, 2, 2, 2, None] + list(range(10, 40)), "y": [1.0] * 38})
    s = summarize(df, numeric=[], categorical=["k"])
    k = s.features[0]
    assert isinstance(k, LevelCounts)
    assert len(k.levels) == 20 and k.total_levels == 34  # 33 values and null
    assert k.levels[:3] == [1, 2, 3] and k.counts[:3] == [2, 3, 2]  # numbers in order, whatever their counts
    # ties are broken by value, so the same data always shows the same levels
    assert k.levels[3:] == list(range(10, 27)) and summarize(df, numeric=[], categorical=["k"]).features[0] == k


def test_summary_samples_plots_but_not_tables() -> None:
    rng = np.random.default_rng(5)
    df = pl.DataFrame({"x": rng.normal(size=1000), "y": rng.normal(size=1000)})
    s = summarize(df, numeric=["x"], categorical=[], max_plot_rows=100)
    assert (s.rows, s.sample_rows) == (1000, 100)
    x = s.features[0]
    assert isinstance(x, Histogram) and x.values.size == 100
    again = summarize(df, numeric=["x"], categorical=[], max_plot_rows=100)
    assert isinstance(again.features[0], Histogram) and np.array_equal(again.features[0].values, x.values)


def _leak_config(task: str = "regression", drop: list[str] | None = None, extra: dict[str, str] | None = None) -> Config:
    columns = {"id": {"type": "integer", "role": "id"}, "a": {"type": "float", "role": "numeric"},
               "b": {"type": "float", "role": "numeric"}, "honest": {"type": "float", "role": "numeric"},
               "y": {"type": "float" if task == "regression" else "string", "role": "numeric" if task == "regression" else "categorical"}}
    columns |= {name: {"type": "float", "role": "numeric"} for name in (extra or {})}
    return Config.model_validate({
        "name": "t", "source": {"path": "d.csv"},
        "schema": {"target": "y", "task": task, "entity": {"key": "id"}, "event_time": {"kind": "ingest_time"},
                   "columns": columns, "drop": drop or []},
    })


def test_target_checks_name_a_planted_leak_with_its_evidence(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 500
    a, b = rng.integers(0, 50, n).astype(float), rng.integers(0, 80, n).astype(float)
    honest = rng.normal(size=n)
    frame = pl.DataFrame({"id": range(n), "a": a, "b": b, "honest": honest, "y": a + b + 0 * honest})
    checks = target_checks(frame, _leak_config())
    assert {leak.column for leak in checks.leaks} == {"a", "b"}
    assert checks.problems == []
    text = html.unescape(report(frame, tmp_path, numeric=["a", "b", "honest"], categorical=[], checks=checks))
    section = text[text.index("<h2>Target checks</h2>"):text.index("<h2>Columns</h2>")]
    assert "a + b == y on 500 of 500 rows" in section
    assert "<td>a</td>" in section and "<td>b</td>" in section
    assert "honest" not in section


def test_target_checks_pass_honest_data_and_flag_a_target_that_cannot_be_learned() -> None:
    rng = np.random.default_rng(2)
    n = 300
    frame = pl.DataFrame({"id": range(n), "a": rng.normal(size=n), "b": rng.normal(size=n), "honest": rng.normal(size=n)})
    honest = target_checks(frame.with_columns(y=pl.col("a") * 2 + pl.Series(rng.normal(size=n))), _leak_config(drop=["b"]))
    assert honest.leaks == [] and honest.problems == [] and honest.dropped == ["b"]
    assert target_checks_html(honest).count("<tr") == 0
    constant = target_checks(frame.with_columns(y=pl.lit(3.0)), _leak_config())
    assert constant.problems and "one value only" in constant.problems[0]
    labels = ["no"] * (n - 2) + ["yes"] * 2
    few = target_checks(frame.with_columns(y=pl.Series(labels)), _leak_config("classification"))
    assert few.problems and "'yes': 2" in few.problems[0] and "at least 4" in few.problems[0]
    one = target_checks(frame.with_columns(y=pl.lit("no")), _leak_config("classification"))
    assert "one class only" in one.problems[0]


def test_target_checks_find_an_identity_from_their_sample_of_a_million_rows() -> None:
    """The detection reads a seeded sample (its cost is in benchmarks, not here): an exact
    `a + b == y` identity still shows, and the sample is the same on every run."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    a, b = rng.integers(0, 50, n).astype(float), rng.integers(0, 80, n).astype(float)
    frame = pl.DataFrame({"id": np.arange(n), "a": a, "b": b, "honest": rng.normal(size=n), "y": a + b})
    checks = target_checks(frame, _leak_config())
    assert {leak.column for leak in checks.leaks} == {"a", "b"}
    assert target_checks(frame, _leak_config()) == checks


HOSTILE = "<script>alert('x')</script>\"q\" {{ 7*7 }}"


def test_hostile_names_and_values_are_text_in_every_section(tmp_path: Path) -> None:
    """A column name, a level and a title that are HTML, quotes or template syntax stay text:
    in the cards, the tables, the target checks, the captions; nothing runs, nothing is evaluated."""
    from conveyor.core.leakage import Leak
    from conveyor.stages.prep._eda import TargetChecks

    rng = np.random.default_rng(1)
    n = 120
    df = pl.DataFrame({HOSTILE: rng.normal(size=n), "c": rng.choice([HOSTILE, "x", "{{ y }}"], n).tolist(),
                       "y": rng.normal(size=n)})
    checks = TargetChecks(target=HOSTILE, leaks=[Leak(HOSTILE, f"equals {HOSTILE}")], problems=[HOSTILE],
                          checked=[HOSTILE], dropped=[HOSTILE], sample_rows=n)
    text = report(df, tmp_path, numeric=[HOSTILE], categorical=["c"], title=HOSTILE, checks=checks)
    assert "<script" not in text
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;q&#34; {{ 7*7 }}"
    # title and h1, the column table, the leak table (column and evidence), the problem, the dropped note,
    # the correlation's undefined list or the top value: at least these six places
    assert text.count(escaped) >= 6
    assert HOSTILE in column_table(text)
    assert column_table(text)["c"][-1].rsplit(" (", 1)[0] in {HOSTILE, "x", "{{ y }}"}  # the top value, as text
    assert_offline(text)
