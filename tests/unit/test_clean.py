from __future__ import annotations

import polars as pl

from conveyor.core.config import Config
from conveyor.stages.prep import EVENT_TIMESTAMP, clean_frame

INGESTED = "2026-01-02T03:04:05+00:00"


def _config(**schema: object) -> Config:
    base = {
        "target": "y",
        "task": "regression",
        "entity": {"key": "id"},
        "event_time": {"kind": "datetime", "columns": ["ts"]},
        "columns": {
            "id": {"type": "integer", "role": "id"},
            "ts": {"type": "datetime", "role": "event_time"},
            "x": {"type": "float", "role": "numeric"},
            "c": {"type": "string", "role": "categorical"},
            "y": {"type": "float", "role": "numeric"},
        },
    }
    base.update(schema)
    return Config.model_validate({"name": "t", "source": {"path": "d.csv"}, "schema": base,
                                  "cleaning": {"null_values": {"x": [-1]}}})


def _raw(rows: list[tuple[str, ...]]) -> pl.DataFrame:
    frame = pl.DataFrame([list(r) for r in rows], schema=["id", "ts", "x", "c", "y"], orient="row")
    return frame.with_columns(pl.Series("_line", range(2, len(rows) + 2), dtype=pl.Int64))


def test_rows_that_cannot_be_valid_are_quarantined_with_reasons() -> None:
    raw = _raw([
        ("1", "2020-01-01 10:00:00", "1.5", "a", "3"),
        ("2", "not a time", "1", "a", "3"),
        ("3", "2020-01-01 11:00:00", "abc", "b", "4"),
        ("4", "2020-01-01 12:00:00", "2", "b", ""),
        ("", "2020-01-01 13:00:00", "2", "b", "5"),
        ("1", "2020-01-01 10:00:00", "9", "a", "7"),  # same key and time as line 2
        ("6", "2020-01-01 14:00:00", "NA", "", "8"),
        ("7", "2020-01-01 15:00:00", "-1", "c", "9"),
    ])
    clean, quarantine = clean_frame(raw, _config(), INGESTED)
    reasons = dict(zip(quarantine["_line"].to_list(), quarantine["_reason"].to_list(), strict=True))
    assert reasons == {
        3: "ts: 'not a time' is not a valid datetime",
        4: "x: 'abc' is not a valid float",
        5: "y: the target is missing",
        6: "id: the entity key is missing",
        7: "id: duplicate entity key 1 at the same event time",
    }
    assert clean["_line"].to_list() == [2, 8, 9]
    assert clean.height + quarantine.height == raw.height  # nothing silently dropped
    assert quarantine["x"].to_list()[1] == "abc"  # the original text is kept
    assert clean.filter(pl.col("_line") == 8)["x"].to_list() == [None]  # NA is missing, kept
    assert clean.filter(pl.col("_line") == 9)["x"].to_list() == [None]  # cleaning.null_values
    assert clean[EVENT_TIMESTAMP].dtype == pl.Datetime("us", "UTC")


def test_generated_keys_and_ingest_time() -> None:
    config = _config(entity={"key": "row_id", "generated": True}, event_time={"kind": "ingest_time"}, drop=["ts"])
    raw = _raw([("1", "x", "1", "a", "1"), ("2", "y", "2", "b", "2")])
    clean, quarantine = clean_frame(raw, config, INGESTED)
    assert quarantine.height == 0  # "x"/"y" are not datetimes, but ts is dropped: no reason to reject
    assert clean["row_id"].to_list() == [1, 2]
    assert clean[EVENT_TIMESTAMP].to_list()[0].isoformat() == INGESTED


def test_date_plus_hour_event_time() -> None:
    config = Config.model_validate({
        "name": "t", "source": {"path": "d.csv"},
        "schema": {
            "target": "y", "task": "regression", "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "date_hour", "columns": ["d", "hr"]},
            "columns": {"d": {"type": "date", "role": "event_time"}, "hr": {"type": "integer", "role": "numeric"},
                        "y": {"type": "integer", "role": "numeric"}},
        },
    })
    raw = pl.DataFrame({"d": ["2011-01-01", "2011-01-01"], "hr": ["0", "23"], "y": ["1", "2"], "_line": [2, 3]})
    clean, _ = clean_frame(raw, config, INGESTED)
    assert [str(t) for t in clean[EVENT_TIMESTAMP].to_list()] == ["2011-01-01 00:00:00+00:00", "2011-01-01 23:00:00+00:00"]
    assert clean["hr"].to_list() == [0, 23]  # the hour stays a feature


def _numbers_config(cleaning: dict[str, object] | None = None, source: dict[str, object] | None = None) -> Config:
    return Config.model_validate({
        "name": "t", "source": {"path": "d.csv", **(source or {})},
        "schema": {
            "target": "y", "task": "regression", "entity": {"key": "id"},
            "event_time": {"kind": "ingest_time"},
            "columns": {"id": {"type": "integer", "role": "id"}, "n": {"type": "integer", "role": "numeric"},
                        "x": {"type": "float", "role": "numeric"}, "y": {"type": "float", "role": "numeric"}},
        },
        "cleaning": cleaning or {},
    })


def _frame(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    frame = pl.DataFrame([list(r) for r in rows], schema=["id", "n", "x", "y"], orient="row")
    return frame.with_columns(pl.Series("_line", range(2, len(rows) + 2), dtype=pl.Int64))


def test_integers_parse_without_a_float_round_trip_and_bad_numbers_are_quarantined_not_crashes() -> None:
    raw = _frame([
        ("12345678901234567", "1", "1.5", "1"),
        ("12345678901234568", "5e+05", "2", "2"),  # one digit apart: two ids, not a duplicate
        ("3", "1e30", "1", "3"),
        ("4", "99999999999999999999", "1", "4"),
        ("5", "inf", "1", "5"),
        ("6", "2.5", "1", "6"),
        ("7", "1", "Infinity", "7"),
        ("8", "1", "1", "-inf"),
        ("9", "3.0", "1e400", "9"),
    ])
    clean, quarantine = clean_frame(raw, _numbers_config(), INGESTED)
    assert clean["id"].to_list() == [12345678901234567, 12345678901234568]
    assert clean["n"].to_list() == [1, 500000]
    reasons = dict(zip(quarantine["_line"].to_list(), quarantine["_reason"].to_list(), strict=True))
    assert reasons == {
        4: "n: '1e30' is too large to be an exact integer",
        5: "n: '99999999999999999999' is out of the integer range (-2^63 .. 2^63-1)",
        6: "n: 'inf' is not a finite number",
        7: "n: '2.5' is not a whole number",
        8: "x: 'Infinity' is not a finite number",
        9: "y: '-inf' is not a finite number",
        10: "x: '1e400' is not a finite number",
    }
    assert clean.height + quarantine.height == raw.height


def test_non_finite_as_null_keeps_the_row_unless_it_is_the_target() -> None:
    raw = _frame([("1", "inf", "NaN", "1"), ("2", "1", "-Infinity", "2"), ("3", "1", "1", "inf")])
    clean, quarantine = clean_frame(raw, _numbers_config({"non_finite": None}), INGESTED)
    assert clean["n"].to_list() == [None, 1] and clean["x"].to_list() == [None, None]
    assert quarantine["_reason"].to_list() == ["y: the target is missing"]
    import math

    assert all(v is None or math.isfinite(v) for v in clean["x"].to_list())


def test_number_notation_and_missing_tokens() -> None:
    raw = _frame([("1", "1.234", "0,5", "2"), ("2", "-", "1.234,5", "3"), ("3", "12.34", "unknown", "4")])
    config = _numbers_config({"missing_tokens": {"n": ["-"], "x": ["unknown"]}}, {"decimal": ",", "thousands": "."})
    clean, quarantine = clean_frame(raw, config, INGESTED)
    assert clean["n"].to_list() == [1234, None]
    assert clean["x"].to_list() == [0.5, 1234.5]
    assert quarantine["_reason"].to_list() == ["n: '12.34' is not a valid integer"]


def test_a_missing_token_for_an_unknown_column_is_named() -> None:
    import pytest

    from conveyor.core import ConfigError

    with pytest.raises(ConfigError, match="cleaning.missing_tokens: column 'nope'"):
        clean_frame(_frame([("1", "1", "1", "1")]), _numbers_config({"missing_tokens": {"nope": ["-"]}}), INGESTED)


def test_nan_text_in_a_number_column_is_non_finite_quarantined_by_default() -> None:
    raw = _frame([("1", "NaN", "1", "1"), ("2", "1", "nan", "2"), ("3", "1", "1", "NaN"), ("4", "2", "2.5", "4")])
    clean, quarantine = clean_frame(raw, _numbers_config(), INGESTED)
    assert clean["id"].to_list() == [4]
    reasons = dict(zip(quarantine["_line"].to_list(), quarantine["_reason"].to_list(), strict=True))
    assert reasons == {
        2: "n: 'NaN' is not a finite number",
        3: "x: 'nan' is not a finite number",
        4: "y: 'NaN' is not a finite number",
    }


def test_nan_text_is_missing_with_non_finite_null_or_a_missing_token() -> None:
    raw = _frame([("1", "NaN", "1", "1"), ("2", "1", "nan", "2"), ("3", "1", "1", "NaN")])
    clean, quarantine = clean_frame(raw, _numbers_config({"non_finite": "null"}), INGESTED)
    assert clean["n"].to_list() == [None, 1] and clean["x"].to_list() == [1.0, None]
    assert quarantine["_reason"].to_list() == ["y: the target is missing"]
    # a per-column token (what init writes for a column that uses NaN as missing): only that column
    clean, quarantine = clean_frame(raw, _numbers_config({"missing_tokens": {"x": ["nan"]}}), INGESTED)
    assert clean["id"].to_list() == [2] and clean["x"].to_list() == [None]
    assert sorted(quarantine["_reason"].to_list()) == ["n: 'NaN' is not a finite number",
                                                        "y: 'NaN' is not a finite number"]
