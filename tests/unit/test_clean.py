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
