"""Behavioural tests of the drift statistics and the HTML report."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from conveyor.core.config import Config
from conveyor.core.errors import MonitoringError
from conveyor.stages.monitoring._drift import (
    DriftThresholds,
    categorical_drift,
    compute_drift,
    ks_asymptotic,
    numeric_drift,
    psi,
    to_labels,
)
from conveyor.stages.monitoring._monitor import check_drift, drift_summary, newest_version
from conveyor.stages.monitoring._report import histogram_edges, level_shares, render_drift_html, write_drift_report

DEFAULT = DriftThresholds()
LEVELS = np.array([f"L{i}" for i in range(10)])
LEVEL_P = np.array([0.25, 0.18, 0.14, 0.11, 0.09, 0.07, 0.06, 0.05, 0.03, 0.02])


def test_same_distribution_numeric_does_not_drift() -> None:
    rng = np.random.default_rng(1)
    f = numeric_drift("x", rng.normal(size=5000), rng.normal(size=1000), DEFAULT)
    assert not f.drifted
    assert f.p_value > 0.01
    assert f.psi < 0.05
    assert f.effect < 0.1
    assert (f.n_reference, f.n_current) == (5000, 1000)


def test_shifted_mean_drifts() -> None:
    rng = np.random.default_rng(2)
    f = numeric_drift("x", rng.normal(size=5000), rng.normal(0.5, size=1000), DEFAULT)
    assert f.drifted
    assert f.p_value < 1e-10
    assert f.psi >= 0.2
    assert f.effect == pytest.approx(0.5, abs=0.1)


def test_asymptotic_ks_matches_scipy() -> None:
    # scipy's method="asymp" uses the finite-n kstwo(round(nm/(n+m))); the
    # Kolmogorov limit differs from it by < 1e-3 where decisions are made
    # (p <= 0.05 at these sizes) and is never smaller (slightly conservative).
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=5000), rng.normal(0.1, size=1000)
    d, p = ks_asymptotic(np.sort(ref), np.sort(cur))
    expected = ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert expected.pvalue < 0.05
    assert abs(p - expected.pvalue) < 1e-3
    for seed in range(20):
        rng = np.random.default_rng(seed)
        ref, cur = rng.normal(size=5000), rng.normal(size=1000)
        _, p = ks_asymptotic(np.sort(ref), np.sort(cur))
        expected = ks_2samp(ref, cur, method="asymp").pvalue
        assert expected - 1e-12 <= p <= expected + 0.01


def test_effect_is_scipy_wasserstein_over_std() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.gamma(2.0, size=3000), rng.gamma(2.5, size=800)
    f = numeric_drift("x", ref, cur, DEFAULT)
    assert f.effect == pytest.approx(wasserstein_distance(ref, cur) / ref.std(), rel=1e-9)


def test_psi_zero_for_identical_and_large_for_strong_shift() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=4000)
    assert numeric_drift("x", x, x.copy(), DEFAULT).psi == pytest.approx(0.0, abs=1e-12)
    assert numeric_drift("x", x, x + 1.0, DEFAULT).psi > 0.2
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_few_valued_and_constant_numeric_columns() -> None:
    rng = np.random.default_rng(6)
    ref = rng.integers(0, 3, 2000).astype(float)
    same = numeric_drift("x", ref, rng.integers(0, 3, 500), DEFAULT)
    assert same.psi < 0.05 and not same.drifted
    const = numeric_drift("c", np.full(200, 5.0), np.full(100, 7.0), DEFAULT)
    assert const.psi > 0.2 and const.drifted and const.effect == 0.0


def test_missing_values_are_dropped_and_reported() -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(size=1000).astype(object)
    ref[:100] = None
    cur = rng.normal(size=500)
    cur[:250] = np.nan
    f = numeric_drift("x", ref, cur, DEFAULT)
    assert f.reference_missing == pytest.approx(0.1)
    assert f.current_missing == pytest.approx(0.5)
    assert (f.n_reference, f.n_current) == (900, 250)
    assert not math.isnan(f.p_value)


def test_categorical_chi2_is_calibrated_under_no_change() -> None:
    # A goodness-of-fit test against the reference shares ignores the noise of
    # the reference sample and flags far more than alpha of unchanged columns.
    thresholds = DriftThresholds(p_value=0.05, psi=0.0)
    hits = 0
    reps = 200
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        ref = rng.choice(LEVELS, size=500, p=LEVEL_P)
        cur = rng.choice(LEVELS, size=200, p=LEVEL_P)
        hits += categorical_drift("c", ref, cur, thresholds).drifted
    assert hits / reps <= 0.08


def test_categorical_strong_change_drifts() -> None:
    rng = np.random.default_rng(8)
    ref = rng.choice(LEVELS, size=2000, p=LEVEL_P)
    cur = rng.choice(LEVELS, size=1000, p=LEVEL_P[::-1])
    f = categorical_drift("c", ref, cur, DEFAULT)
    assert f.drifted and f.test == "chi2"
    assert f.psi > 0.2
    assert 0.0 < f.effect <= 1.0


def test_categorical_levels_compare_as_strings_and_nulls_are_a_level() -> None:
    assert to_labels([1, "1", 1.0, None, float("nan"), 2.5]).tolist() == ["1", "1", "1", "<null>", "<null>", "2.5"]
    f = categorical_drift("c", [1, 2, None] * 100, ["1", "2", None] * 50, DEFAULT)
    assert f.psi == pytest.approx(0.0, abs=1e-12)
    assert f.p_value == pytest.approx(1.0)
    assert f.reference_missing == pytest.approx(1 / 3)
    single = categorical_drift("c", ["a"] * 50, ["a"] * 40, DEFAULT)
    assert (single.statistic, single.p_value, single.drifted) == (0.0, 1.0, False)
    new_level = categorical_drift("c", ["a", "b"] * 200, ["a", "b", "z", "z"] * 100, DEFAULT)
    assert new_level.drifted


def test_all_null_and_empty_inputs_do_not_crash() -> None:
    rng = np.random.default_rng(9)
    for f in (
        numeric_drift("x", [None] * 50, [None] * 40, DEFAULT),
        numeric_drift("x", rng.normal(size=50), np.array([]), DEFAULT),
        categorical_drift("c", ["a", "b"] * 20, [], DEFAULT),
        categorical_drift("c", [], [], DEFAULT),
    ):
        assert math.isnan(f.p_value) and math.isnan(f.psi) and not f.drifted
    report = compute_drift(
        {"x": rng.normal(size=50), "c": ["a"] * 50}, {"x": [], "c": []}, numeric=["x"], categorical=["c"]
    )
    assert report.verdict == "insufficient data" and report.dataset_drift is None
    json.dumps(report.to_dict())


def _frames(seed: int, n_ref: int, n_cur: int, shift: float) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    ref = {"a": rng.normal(size=n_ref), "b": rng.exponential(size=n_ref), "c": rng.choice(LEVELS, n_ref, p=LEVEL_P)}
    cur = {"a": rng.normal(shift, size=n_cur), "b": rng.exponential(size=n_cur), "c": rng.choice(LEVELS, n_cur, p=LEVEL_P)}
    return ref, cur


def test_dataset_verdicts() -> None:
    ref, cur = _frames(10, 3000, 1000, 0.0)
    calm = compute_drift(ref, cur, numeric=["a", "b"], categorical=["c"])
    assert calm.verdict == "no drift" and calm.dataset_drift is False and calm.drifted_share == 0.0

    ref, cur = _frames(11, 3000, 1000, 1.0)
    shifted = compute_drift(ref, cur, numeric=["a", "b"], categorical=["c"])
    assert shifted.verdict == "drift" and shifted.dataset_drift is True
    assert shifted.drifted_share == pytest.approx(1 / 3)

    rng = np.random.default_rng(12)
    ref, cur = _frames(13, 3000, 1000, 0.0)
    pred = (rng.normal(size=3000), rng.normal(2.0, size=1000))
    by_pred = compute_drift(ref, cur, numeric=["a", "b"], categorical=["c"], prediction=pred)
    assert by_pred.prediction is not None and by_pred.prediction.kind == "prediction"
    assert by_pred.drifted_share == 0.0 and by_pred.verdict == "drift"


def test_insufficient_data_below_min_rows() -> None:
    ref, cur = _frames(14, 1000, 20, 3.0)
    report = compute_drift(ref, cur, numeric=["a", "b"], categorical=["c"])
    assert report.verdict == "insufficient data" and report.dataset_drift is None
    assert report.n_current == 20
    assert not math.isnan(report.features[0].p_value)  # stats still computed


def test_to_dict_is_json_serialisable() -> None:
    ref, cur = _frames(15, 500, 200, 0.5)
    ref["n"], cur["n"] = [None] * 500, [None] * 200
    preds = (np.arange(500) % 3, np.arange(200) % 2)
    report = compute_drift(
        ref, cur, numeric=["a", "n"], categorical=["c"], prediction=preds, prediction_kind="categorical"
    )
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["features"][1]["p_value"] is None
    assert d["prediction"]["test"] == "chi2" and isinstance(d["prediction"]["drifted"], bool)
    assert isinstance(d["n_reference"], int) and d["verdict"] in {"drift", "no drift"}


def test_report_is_self_contained(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    ref, cur = _frames(16, 2000, 600, 0.8)
    for i in range(12):  # 15 features: plots are capped at 12 (+1 for the prediction)
        ref[f"f<{i}>"], cur[f"f<{i}>"] = rng.normal(size=2000), rng.normal(size=600)
    numeric = ["a", "b"] + [f"f<{i}>" for i in range(12)]
    pred = (rng.normal(size=2000), rng.normal(size=600))
    report = compute_drift(ref, cur, numeric=numeric, categorical=["c"], prediction=pred)
    out = write_drift_report(
        report, ref, cur, numeric=numeric, categorical=["c"], path=tmp_path / "r" / "drift.html",
        title="Drift <test>", prediction=pred,
    )
    text = out.read_text(encoding="utf-8")
    assert out.exists() and report.verdict.upper() in text
    assert text.count("data:image/png;base64,") == 12 + 1
    assert not re.search(r"https?://", text)
    assert "<script" not in text
    assert "f&lt;0&gt;" in text and "Drift &lt;test&gt;" in text
    assert len(text.encode()) < 500_000  # 13 figures and the tables: a file to mail or attach
    # drifted features come first in the table
    assert text.index(">a</td>") < text.index(">b</td>")

    empty = compute_drift({"x": [None] * 40}, {"x": [None] * 40}, numeric=["x"], categorical=[])
    out2 = write_drift_report(empty, {"x": [None] * 40}, {"x": [None] * 40}, numeric=["x"], categorical=[],
                              path=tmp_path / "empty.html", title="empty")
    assert out2.read_text(encoding="utf-8").count("data:image/png") == 1


# --------------------------------------------------------------------------- #
# plot data and the page, without files
# --------------------------------------------------------------------------- #
def test_histogram_edges() -> None:
    few = histogram_edges(np.array([1.0, 2.0, 2.0, 4.0]))
    assert few == [0.5, 1.5, 3.0, 4.5]  # one bin around each value
    assert histogram_edges(np.array([3.0, 3.0])) == [2.5, 3.5]
    rng = np.random.default_rng(17)
    many = np.concatenate([rng.normal(size=5000), [1e6]])  # one far outlier
    edges = histogram_edges(many)
    assert len(edges) == 41 and edges == sorted(edges)
    assert edges[-1] < 10  # the central 99.8%: the outlier does not squash the plot
    small = rng.normal(size=200)
    assert histogram_edges(small)[0] == small.min() and histogram_edges(small)[-1] == small.max()


def test_level_shares_order_and_cut() -> None:
    levels, ref, cur, hidden = level_shares([2, 10, 10, 1, None], ["10", "10", "x", "x"])
    assert levels == ["1", "2", "10", "x", "<null>"]  # numbers in numeric order, then text, then nulls
    assert ref == [0.2, 0.2, 0.4, 0.0, 0.2] and cur == [0.0, 0.0, 0.5, 0.5, 0.0]
    assert hidden == 0
    many = [f"L{i:02d}" for i in range(30)]
    levels, ref, cur, hidden = level_shares(many + ["L29"] * 5, many, top=4)
    assert hidden == 26 and levels[-1] == "L29" and len(levels) == 4
    assert levels[:3] == ["L00", "L01", "L02"]  # ties broken by label: the same levels every time


def _config(task: str = "regression", **monitoring: object) -> Config:
    columns = {"row": {"type": "integer", "role": "id"}, "x": {"type": "float", "role": "numeric"},
               "c": {"type": "string", "role": "categorical"}, "y": {"type": "float", "role": "numeric"}}
    return Config.model_validate({
        "name": "demo",
        "source": {"kind": "csv", "path": "data.csv"},
        "schema": {"target": "y", "task": task, "entity": {"key": "row"}, "event_time": {"kind": "ingest_time"},
                   "columns": columns},
        "monitoring": {"min_rows": 10, **monitoring},
    })


def _records(version: str, n: int, shift: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"model_version": version, "timestamp": f"t{version}-{i}", "prediction": float(rng.normal(shift)),
         "inputs": {"x": float(rng.normal(shift)), "c": str(rng.choice(["a", "b"]))}}
        for i in range(n)
    ]


def _reference(n: int = 2000) -> dict:
    rng = np.random.default_rng(18)
    return {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n).tolist(), "__prediction": rng.normal(size=n)}


def test_check_drift_compares_the_newest_version_only() -> None:
    records = _records("1", 300, 3.0, 19) + _records("2", 200, 0.0, 20)
    result = check_drift(records, _reference(), _config())
    assert (result.version, result.n_current, result.skipped) == ("2", 200, {"1": 300})
    assert (result.first, result.last) == ("t2-0", "t2-199")
    assert result.report.verdict == "no drift" and result.report.n_current == 200
    assert result.prediction is not None and result.report.prediction is not None
    assert result.thresholds.min_rows == 10
    shifted = check_drift(_records("2", 200, 3.0, 21), _reference(), _config())
    assert shifted.report.verdict == "drift"
    assert [f.name for f in shifted.report.features if f.drifted] == ["x"]
    assert shifted.report.prediction is not None and shifted.report.prediction.drifted


def test_check_drift_reads_inputs_as_logged() -> None:
    records = _records("3", 40, 0.0, 22)
    records[0]["inputs"] = {"x": None, "c": None}  # explicit nulls
    records[1]["inputs"] = {"x": "abc"}  # a non-number, and a missing key
    records[2]["prediction"] = None
    result = check_drift(records, _reference(), _config(psi=5.0))
    assert np.isnan(result.current["x"][:2]).all() and result.current["c"][:2] == [None, None]
    x = next(f for f in result.report.features if f.name == "x")
    assert x.current_missing == pytest.approx(2 / 40) and x.n_current == 38
    assert result.prediction is not None and np.isnan(result.prediction[1][2])


def test_check_drift_on_a_classifier_uses_the_probability_or_nothing() -> None:
    records = _records("1", 50, 0.0, 23)
    for r in records:
        r["probability"] = 0.5
    ref = _reference() | {"__probability": np.full(2000, 0.5)}
    with_probability = check_drift(records, ref, _config("classification"))
    assert with_probability.prediction is not None and with_probability.prediction[1].tolist() == [0.5] * 50
    labels_only = check_drift(records, _reference(), _config("classification"))
    assert labels_only.prediction is None and labels_only.report.prediction is None


def test_check_drift_names_what_is_missing() -> None:
    with pytest.raises(MonitoringError, match=r"lacks the feature\(s\) \['c'\]"):
        check_drift(_records("1", 50, 0.0, 24), {"x": np.zeros(10)}, _config())
    with pytest.raises(MonitoringError, match="no logged predictions"):
        newest_version([])


def test_drift_summary_is_the_json_record() -> None:
    result = check_drift(_records("7", 60, 0.0, 25), _reference(), _config())
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    summary = drift_summary(result, _config(), Path("ref.parquet"), stamp)
    assert summary["model_version"] == "7" and summary["checked_at"] == "2026-01-02T03:04:05+00:00"
    assert summary["window"] == {"predictions": 60, "from": "t7-0", "to": "t7-59", "other_versions_skipped": {}}
    assert summary["thresholds"]["min_rows"] == 10 and summary["reference"] == "ref.parquet"
    assert summary["verdict"] == result.report.verdict and len(summary["features"]) == 2
    json.dumps(summary, allow_nan=False)


def test_render_drift_html_without_files() -> None:
    ref, cur = {"x": np.arange(100.0), "c": ["a", "b"] * 50}, {"x": np.arange(100.0) + 60, "c": ["a"] * 100}
    report = compute_drift(ref, cur, numeric=["x"], categorical=["c"])
    text = render_drift_html(report, ref, cur, title="T", thresholds=DriftThresholds(psi=0.3))
    assert text.startswith("<!DOCTYPE html>") and "DRIFT</span>" in text
    assert "PSI &ge; 0.3 per feature" in text
    assert text.count("data:image/png;base64,") == 2 and text.count('<tr class="drifted">') == 2
    assert "n/a" not in text


def test_the_typed_check_carries_the_table_and_tolerates_too_few_rows(tmp_path: Path) -> None:
    from conveyor.stages.monitoring._monitor import _check

    shifted = check_drift(_records("2", 200, 3.0, 21), _reference(), _config())
    check = _check(shifted, tmp_path / "d.json", tmp_path / "d.html")
    assert check.verdict == "drift" and check.n_reference == 2000 and check.n_current == 200
    assert [r.name for r in check.rows][0] in {"x", "prediction", "__prediction"}  # largest PSI first
    assert [r.psi for r in check.rows] == sorted((r.psi or 0.0 for r in check.rows), reverse=True)
    assert {r.name for r in check.rows if r.drifted} >= {"x"}
    assert type(check).model_validate_json(check.model_dump_json()) == check  # its JSON form round-trips

    few = check_drift(_records("2", 5, 0.0, 24), _reference(), _config())
    assert few.report.verdict == "insufficient data" and few.report.dataset_drift is None
    assert _check(few, tmp_path / "f.json", tmp_path / "f.html").dataset_drift is None


# --------------------------------------------------------------------------- #
# the rules: what fires, with which figure
# --------------------------------------------------------------------------- #
def _rules(f) -> dict[str, object]:
    return {r.rule: r for r in f.rules}


@pytest.mark.parametrize("n", [5_000, 1_000_000])
def test_a_quarter_more_spread_fires_at_5k_and_at_1m(n: int) -> None:
    # PSI on deciles stays under 0.2 for a 1.25x spread; the Wasserstein distance is ~0.2 std
    rng = np.random.default_rng(30)
    ref, cur = rng.normal(size=n), rng.normal(scale=1.25, size=n)
    f = numeric_drift("x", ref, cur, DEFAULT)
    assert f.psi < DEFAULT.psi
    assert f.drifted and list(_rules(f)) == ["wasserstein"]
    rule = _rules(f)["wasserstein"]
    assert rule.value == pytest.approx(0.25 * math.sqrt(2 / math.pi), abs=0.02) and rule.threshold == DEFAULT.wasserstein
    assert f.spread == pytest.approx(1.25, abs=0.03) and abs(f.location) < 0.05
    assert "spread x1.2" in rule.detail
    # a negligible change at 1M rows is significant, and still no drift: the effect is what matters
    tiny = numeric_drift("x", ref, rng.normal(0.01, size=n), DEFAULT)
    assert not tiny.drifted and tiny.effect < 0.05


def test_a_five_percent_spike_of_one_value_fires() -> None:
    rng = np.random.default_rng(31)
    ref, cur = rng.normal(size=5000), rng.normal(size=5000)
    cur[rng.choice(5000, 250, replace=False)] = 0.0  # 5 % of the rows at the median: KS, PSI and W1 barely move
    f = numeric_drift("x", ref, cur, DEFAULT)
    assert f.effect < DEFAULT.wasserstein and f.psi < DEFAULT.psi
    assert f.drifted and list(_rules(f)) == ["point_mass"]
    rule = _rules(f)["point_mass"]
    assert rule.value == pytest.approx(0.05, abs=0.002)
    assert rule.detail.startswith("value 0: 0.0% -> 5.0% of values")
    # a value that was already common and stays so is no spike
    ints = rng.integers(0, 5, 5000)
    assert not numeric_drift("k", ints, rng.integers(0, 5, 5000), DEFAULT).drifted


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_missing_share_changes_fire_with_both_shares(kind: str) -> None:
    rng = np.random.default_rng(32)
    if kind == "numeric":
        ref, cur = rng.normal(size=4000), rng.normal(size=1000)
        partly = cur.copy()
        partly[rng.choice(1000, 300, replace=False)] = np.nan
        check = numeric_drift
    else:
        ref, cur = rng.choice(LEVELS, 4000, p=LEVEL_P).astype(object), rng.choice(LEVELS, 1000, p=LEVEL_P).astype(object)
        partly = cur.copy()
        partly[rng.choice(1000, 300, replace=False)] = None
        check = categorical_drift
    thirty = check("hum", ref, partly, DEFAULT)
    assert thirty.drifted and "missing" in _rules(thirty)
    assert (thirty.reference_missing, thirty.current_missing) == (0.0, pytest.approx(0.3))
    assert _rules(thirty)["missing"].detail == "missing 0.0% -> 30.0% (+30.0 points)"
    all_null = check("hum", ref, [None] * 1000, DEFAULT)
    assert all_null.drifted and all_null.current_missing == 1.0
    assert _rules(all_null)["missing"].value == pytest.approx(1.0)
    assert not check("hum", ref, cur, DEFAULT).drifted
    # an all-null feature is dataset drift on its own, and the JSON carries both shares
    report = compute_drift({"hum": ref, "a": rng.normal(size=4000)}, {"hum": [None] * 1000, "a": rng.normal(size=1000)},
                           numeric=["a"] + (["hum"] if kind == "numeric" else []),
                           categorical=["hum"] if kind == "categorical" else [])
    assert report.verdict == "drift" and report.drifted_share == 0.5
    assert any(r.startswith("hum: missing 0.0% -> 100.0%") for r in report.reasons), report.reasons
    hum = next(f for f in report.to_dict()["features"] if f["name"] == "hum")
    assert (hum["reference_missing"], hum["current_missing"]) == (0.0, 1.0)
    assert hum["rules"][0]["rule"] == "missing" and hum["rules"][0]["value"] == 1.0


def test_unseen_categories_fire_with_their_share_and_examples() -> None:
    rng = np.random.default_rng(33)
    ref = rng.choice(LEVELS, 5000, p=LEVEL_P).astype(object)
    cur = rng.choice(LEVELS, 2000, p=LEVEL_P).astype(object)
    cur[:100] = "season-7"  # 5 %
    cur[100:120] = 7
    f = categorical_drift("season", ref, cur, DEFAULT)
    assert f.drifted and "unseen" in _rules(f)
    assert f.unseen_share == pytest.approx(0.06) and f.unseen_examples == ("season-7", "7")
    assert "6.0% of rows have 2 level(s) never seen in the reference: 'season-7', '7'" in _rules(f)["unseen"].detail
    # a high-cardinality column sees new levels all the time: only more than expected fires
    ids_ref = rng.zipf(1.3, 5000).astype(str)
    assert not categorical_drift("zip", ids_ref, rng.zipf(1.3, 1000).astype(str), DEFAULT).drifted


def test_a_schema_change_is_drift() -> None:
    rng = np.random.default_rng(34)
    ref = {"a": rng.normal(size=1000), "b": rng.normal(size=1000), "c": rng.choice(["x", "y"], 1000)}
    cur = {"a": rng.normal(size=300), "c": rng.choice(["x", "y"], 300), "surprise": rng.normal(size=300)}
    report = compute_drift(ref, cur, numeric=["a", "b"], categorical=["c"])
    assert report.schema.missing == ["b"] and report.schema.new == ["surprise"]
    b = next(f for f in report.features if f.name == "b")
    assert b.drifted and [r.rule for r in b.rules] == ["schema"] and b.current_missing == 1.0
    assert report.verdict == "drift"
    assert any("new in traffic" in r and "surprise" in r for r in report.reasons)
    assert report.to_dict()["schema"] == {"missing": ["b"], "new": ["surprise"]}
    with pytest.raises(KeyError, match="missing from the reference"):
        compute_drift(ref, cur, numeric=["zz"], categorical=[])


def test_check_drift_sees_fields_missing_from_or_new_in_the_log() -> None:
    records = _records("4", 100, 0.0, 35)
    for r in records:
        r["inputs"] = {"x": r["inputs"]["x"], "extra": 1}  # "c" never logged, "extra" unknown to the model
    result = check_drift(records, _reference(), _config())
    assert result.report.schema.missing == ["c"] and result.report.schema.new == ["extra"]
    assert result.report.verdict == "drift"
    from conveyor.stages.monitoring._monitor import _check

    check = _check(result, Path("d.json"), Path("d.html"))
    assert check.new_fields == ["extra"] and check.rows[0].name == "c" and check.rows[0].drifted
    assert check.rows[0].rules == ["missing in traffic: the field is absent from every current row"]


def test_every_drifted_feature_says_why_in_json_html_and_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(36)
    ref = {"w": rng.normal(size=3000), "h": rng.normal(size=3000)}
    cur = {"w": rng.normal(scale=1.4, size=1000), "h": np.where(rng.random(1000) < 0.3, np.nan, rng.normal(size=1000))}
    report = compute_drift(ref, cur, numeric=["w", "h"], categorical=[])
    text = render_drift_html(report, ref, cur, title="t")
    for f in report.features:
        assert f.drifted and f.rules
        for rule in f.rules:
            assert rule.detail.replace(">", "&gt;") in text
    data = report.to_dict()
    assert all(r["detail"] and r["value"] is not None for f in data["features"] for r in f["rules"])
    from conveyor.stages.monitoring._result import DriftRow

    row = DriftRow.of("h", "ks", 0.5, 0.01, True, effect=0.02, missing=(0.0, 0.3), rules=["missing 0.0% -> 30.0%"])
    assert (row.reference_missing, row.current_missing, row.rules) == (0.0, 0.3, ["missing 0.0% -> 30.0%"])


# --------------------------------------------------------------------------- #
# false alarms on unchanged data: resample the reference many times
# --------------------------------------------------------------------------- #
def _mixed_reference(n: int, seed: int) -> tuple[dict, list[str], list[str]]:
    """Columns of the shapes real data has: smooth, skewed, integer, zero-inflated, with nulls, categorical."""
    rng = np.random.default_rng(seed)
    skewed = rng.lognormal(size=n)
    gappy = rng.normal(size=n)
    gappy[rng.random(n) < 0.1] = np.nan
    zeros = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(size=n))
    ref = {"normal": rng.normal(size=n), "skewed": skewed, "hour": rng.integers(0, 24, n).astype(float),
           "zeros": zeros, "gappy": gappy, "level": rng.choice(LEVELS, n, p=LEVEL_P),
           "flag": rng.choice(np.array(["y", "n", "u"]), n, p=[0.6, 0.35, 0.05])}
    return ref, ["normal", "skewed", "hour", "zeros", "gappy"], ["level", "flag"]


def _alarm_rates(ref: dict, numeric: list[str], categorical: list[str], size: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    n = len(ref["normal"])
    hits = dict.fromkeys(numeric + categorical, 0)
    for _ in range(reps):
        rows = rng.integers(0, n, size)
        report = compute_drift(ref, {c: np.asarray(v)[rows] for c, v in ref.items()}, numeric=numeric,
                               categorical=categorical)
        for f in report.features:
            hits[f.name] += f.drifted
    return {name: count / reps for name, count in hits.items()}


def test_false_alarms_at_500_rows_stay_at_or_under_5_percent() -> None:
    ref, numeric, categorical = _mixed_reference(5_000, 40)
    rates = _alarm_rates(ref, numeric, categorical, 500, 200, 41)
    assert max(rates.values()) <= 0.05, rates


def test_false_alarms_at_1m_rows_stay_at_or_under_5_percent() -> None:
    # Each repetition is 1M rows a side; a detector with a 5 % per-feature false-alarm rate
    # raises at least 3 alarms in these 35 checks with probability ~0.25, one with a 10 % rate
    # with probability ~0.7: at most 2 alarms in 35 is what a sound detector allows.
    ref, numeric, categorical = _mixed_reference(1_000_000, 42)
    rates = _alarm_rates(ref, numeric, categorical, 1_000_000, 5, 43)
    assert sum(rates.values()) * 5 <= 2, rates


def test_sorted_sample_helpers_match_numpy() -> None:
    from conveyor.stages.monitoring._stats import level_counts, point_masses, sorted_quantiles

    rng = np.random.default_rng(44)
    x = np.sort(rng.normal(size=1001))
    qs = np.linspace(0, 1, 11)[1:-1]
    assert np.allclose(sorted_quantiles(x, qs), np.quantile(x, qs), rtol=0, atol=1e-12)
    ref, cur = np.sort(rng.integers(0, 4, 400).astype(float)), np.sort(np.r_[rng.integers(0, 4, 90), [9.0] * 10])
    masses = point_masses(ref, cur, 0.05)
    assert [v for v, _, _ in masses] == [0.0, 1.0, 2.0, 3.0, 9.0]
    assert all(k_r == int((ref == v).sum()) and k_c == int((cur == v).sum()) for v, k_r, k_c in masses)
    assert level_counts(np.array([1.0, np.nan, 1.0, 2.5])) == {"1": 2, "<null>": 1, "2.5": 1}
    assert level_counts(["a", None, "a", 1, 1.0, [1]]) == {"a": 2, "<null>": 1, "1": 2, "[1]": 1}


def test_the_fast_chi_square_and_kolmogorov_are_scipys() -> None:
    """`chi2_homogeneity` and `kolmogorov_p` skip scipy's wrappers, not its arithmetic: the same
    figures, bit for bit, as `chi2_contingency` (Yates' correction on 2 levels) and `kstwobign.sf`."""
    from scipy.stats import chi2_contingency, kstwobign

    from conveyor.stages.monitoring._stats import chi2_homogeneity, kolmogorov_p

    rng = np.random.default_rng(7)
    for levels in (1, 2, 2, 3, 8, 40):
        for _ in range(20):
            table = rng.integers(1, 60, size=(2, levels)).astype(float)
            expected = chi2_contingency(table)
            assert chi2_homogeneity(table) == (float(expected[0]), float(expected[1]))
    for d, n, m in ((0.0, 10, 10), (0.01, 500, 700), (0.2, 30, 40), (0.003, 10**6, 10**6), (1.0, 5, 5)):
        assert kolmogorov_p(d, n, m) == min(max(float(kstwobign.sf(d * math.sqrt(n * m / (n + m)))), 0.0), 1.0)


HOSTILE = "<script>alert('x')</script>\"q\" {{ 7*7 }}"


def test_hostile_names_and_values_are_text_in_every_section() -> None:
    """A feature name, a level, a title, a metric's window and a log's file name that are HTML, quotes or
    template syntax stay text: in the verdict's reasons, the tables, the captions, the performance
    section and its chart, the unreadable lines; nothing runs, nothing is evaluated."""
    from conveyor.stages.monitoring._labels import Performance, PerformanceWindow

    rng = np.random.default_rng(5)
    ref = {HOSTILE: rng.normal(size=800), "c": rng.choice([HOSTILE, "x", "{{ y }}"], 800)}
    cur = {HOSTILE: rng.normal(2, size=300), "c": rng.choice([HOSTILE, "x", "new"], 300)}
    report = compute_drift(ref, cur, numeric=[HOSTILE], categorical=["c"])
    windows = [PerformanceWindow(start=f"2026-01-0{i + 1}T00:00:00 {HOSTILE}", n_labeled=30, value=1.0 + i / 10)
               for i in range(3)]
    performance = Performance(n_labeled=90, metric="rmse", greater_is_better=False, value=1.1, test_value=1.0,
                              degraded=False, scores={HOSTILE: 1.5, "rmse": 1.1}, windows=windows)
    unreadable = [f"predictions/{HOSTILE}.jsonl:{i}" for i in range(25)]
    text = render_drift_html(report, ref, cur, title=HOSTILE, performance=performance, unreadable=unreadable,
                             unreadable_shown=20)
    assert "<script" not in text
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;q&#34; {{ 7*7 }}"
    # title and h1; the feature's row, figure alt and caption, its reason; the level in a reason; the score's
    # name; three windows in the table and three in the chart's tooltips; 20 unreadable lines named
    assert text.count(escaped) >= 2 + 4 + 1 + 6 + 20
    assert "Performance on labeled predictions" in text and text.count("<circle") == 3
    assert "25 lines were not records and were left out" in text and "and 5 more" in text
    assert text.count("data:image/png;base64,") == 2 and "DRIFT</span>" in text
