"""Dates as spreadsheets write them (`25/01/2020`, `12/1/2010 8:26`): init finds the format, prepare reads it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from conveyor.core.config import Column, Config, dump_config, load_config
from conveyor.stages.prep import EVENT_TIMESTAMP, clean_frame
from conveyor.stages.sources import infer_config

INGESTED = "2026-01-02T03:04:05+00:00"


def _write(path: Path, stamps: list[str]) -> Path:
    lines = ["id;when;x;y"] + [f"{i};{s};{i % 7 * 1.5};{i * 2}.5" for i, s in enumerate(stamps, start=1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _days(count: int, fmt: str) -> list[str]:
    start = date(2020, 1, 1).toordinal()
    return [date.fromordinal(start + i).strftime(fmt) for i in range(count)]


def test_day_first_dates_are_the_event_time_with_their_format(tmp_path: Path) -> None:
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", _days(60, "%d/%m/%Y")), target="y", notes=notes)
    column = config.schema.columns["when"]
    assert (column.type, column.role, column.format) == ("date", "event_time", "%d/%m/%Y")
    assert config.schema.event_time.columns == ["when"]
    assert not any("fits both" in n for n in notes)  # 13/01/2020 settles day-first


def test_month_first_datetimes_without_leading_zeros(tmp_path: Path) -> None:
    stamps = [f"{d.month}/{d.day}/{d.year} {h}:{m:02d}" for d, h, m in
              ((date(2010, 12, 1 + i % 28), i % 24, (i * 7) % 60) for i in range(80))]
    config = infer_config(_write(tmp_path / "d.csv", stamps), target="y", notes=[])
    column = config.schema.columns["when"]
    assert (column.type, column.format) == ("datetime", "%m/%d/%Y %H:%M")
    clean, quarantine = _prepare(tmp_path, config)
    assert quarantine.height == 0
    first = clean.sort("_line")[EVENT_TIMESTAMP][0]
    assert first.replace(tzinfo=None) == datetime(2010, 12, 1, 0, 0)


def test_dates_that_fit_both_orders_are_read_month_first_and_init_says_so(tmp_path: Path) -> None:
    stamps = [f"{m:02d}/{d:02d}/2021" for m in range(1, 13) for d in range(1, 13)]
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", stamps), target="y", notes=notes)
    assert config.schema.columns["when"].format == "%m/%d/%Y"
    said = [n for n in notes if "fits both" in n]
    assert said and "schema.columns.when.format to '%d/%m/%Y'" in said[0]


def test_iso_dates_keep_no_format_and_text_is_not_a_date(tmp_path: Path) -> None:
    config = infer_config(_write(tmp_path / "d.csv", _days(40, "%Y-%m-%d")), target="y", notes=[])
    assert (config.schema.columns["when"].type, config.schema.columns["when"].format) == ("date", None)
    codes = [f"{i % 9}/{i % 5}/{i}x" for i in range(40)]  # looks a little like dates, is not
    config = infer_config(_write(tmp_path / "e.csv", codes), target="y", notes=[])
    assert config.schema.columns["when"].type == "string"


def test_a_bad_date_is_quarantined_by_prepare_with_the_format_in_the_file(tmp_path: Path) -> None:
    stamps = _days(100, "%d.%m.%Y")
    stamps[30] = "31.02.2020"  # no such day
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", stamps), target="y", notes=notes)
    assert config.schema.columns["when"].format == "%d.%m.%Y"
    assert any("when: date for 99.0% of its values; 1 value(s)" in n and "(line 32)" in n for n in notes)
    dump_config(config, tmp_path / "conveyor.yaml")
    assert "format: '%d.%m.%Y'" in (tmp_path / "conveyor.yaml").read_text()
    reloaded = load_config(tmp_path / "conveyor.yaml")
    assert reloaded.schema.columns["when"].format == "%d.%m.%Y"
    assert "format" not in (tmp_path / "conveyor.yaml").read_text().split("x: {")[1].split("}")[0]
    clean, quarantine = _prepare(tmp_path, reloaded)
    assert quarantine["_reason"].to_list() == ["when: '31.02.2020' is not a valid date (%d.%m.%Y)"]
    assert clean.height == 99


def test_a_format_on_a_number_column_is_refused() -> None:
    with pytest.raises(ValidationError, match="format '%d/%m/%Y' is for a date, datetime or time column"):
        Column.model_validate({"type": "float", "role": "numeric", "format": "%d/%m/%Y"})


def _prepare(tmp_path: Path, config: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = pl.read_csv(tmp_path / "d.csv", separator=";", infer_schema=False)
    raw = raw.with_columns(pl.Series("_line", range(2, raw.height + 2), dtype=pl.Int64))
    return clean_frame(raw, config, INGESTED)


def test_init_takes_the_file_as_an_argument_and_shows_the_date_format(tmp_path: Path) -> None:
    from tests.conftest import conveyor

    _write(tmp_path / "d.csv", _days(40, "%d/%m/%Y"))
    shown = conveyor("init", "d.csv", "--target", "y", cwd=tmp_path)
    assert "date (%d/%m/%Y)" in shown.stdout
    assert load_config(tmp_path / "conveyor.yaml").source.path == "d.csv"
    both = conveyor("init", "d.csv", "--csv", "e.csv", "--target", "y", "-o", "other.yaml", cwd=tmp_path, check=False)
    assert both.returncode == 2 and "two files given: d.csv and --csv e.csv" in both.stderr


def test_ambiguous_dates_in_a_decimal_comma_file_are_read_day_first(tmp_path: Path) -> None:
    stamps = [f"{d:02d}/{m:02d}/2021" for m in range(1, 13) for d in range(1, 13)]
    lines = ["id;when;x;y"] + [f"{i};{s};{i % 7},5;{i * 2},25" for i, s in enumerate(stamps, start=1)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    notes: list[str] = []
    config = infer_config(tmp_path / "d.csv", target="y", notes=notes)
    assert config.source.decimal == ","
    assert config.schema.columns["when"].format == "%d/%m/%Y"
    assert any("schema.columns.when.format to '%m/%d/%Y' if the month comes first" in n for n in notes)


def test_a_date_column_and_a_time_column_make_the_event_time_together(tmp_path: Path) -> None:
    """`Date;Time` as air-quality and power-meter files write them (`10/03/2004;18.00.00`, decimal
    commas): init types the time, the two columns are the event time, prepare joins them, and a
    time that is not one is quarantined with its format."""
    hours = [datetime(2004, 3, 10, 18) + timedelta(hours=i) for i in range(120)]
    cells = [(h.strftime("%d/%m/%Y"), h.strftime("%H.%M.%S")) for h in hours]
    cells[40] = (cells[40][0], "25.61.00")
    lines = ["Date;Time;CO(GT);T"] + [f"{d};{t};{i % 5},{i % 10};{i % 7},5" for i, (d, t) in enumerate(cells)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    notes: list[str] = []
    config = infer_config(tmp_path / "d.csv", target="CO(GT)", notes=notes)
    time = config.schema.columns["Time"]
    assert (time.type, time.role, time.format) == ("time", "event_time", "%H.%M.%S")
    assert (config.schema.event_time.kind, config.schema.event_time.columns) == ("date_time", ["Date", "Time"])
    dump_config(config, tmp_path / "conveyor.yaml")
    clean, quarantine = _prepare(tmp_path, load_config(tmp_path / "conveyor.yaml"))
    assert quarantine["_reason"].to_list() == ["Time: '25.61.00' is not a valid time (%H.%M.%S)"]
    stamps = clean.sort("_line")[EVENT_TIMESTAMP].dt.replace_time_zone(None).to_list()
    assert stamps[:2] == [datetime(2004, 3, 10, 18), datetime(2004, 3, 10, 19)] and len(stamps) == 119
    assert stamps[40] == datetime(2004, 3, 12, 11)  # the row after the quarantined one keeps its own hour


def test_a_number_with_two_decimals_is_not_a_time_and_a_time_is_not_a_date_alone(tmp_path: Path) -> None:
    from conveyor.core.config import EventTime, Schema

    lines = ["id;when;x;y"] + [f"{i};{10 + i % 12}.{i % 60:02d};{i % 7};{i * 2}" for i in range(1, 60)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert infer_config(tmp_path / "d.csv", target="y", notes=[]).schema.columns["when"].type == "float"
    with pytest.raises(ValidationError, match="takes a date column then a time column"):
        Schema.model_validate({
            "target": "y", "task": "regression", "entity": {"key": "id"},
            "event_time": EventTime(kind="date_time", columns=["when", "at"]).model_dump(),
            "columns": {"id": {"type": "integer", "role": "id"}, "y": {"type": "float", "role": "numeric"},
                        "when": {"type": "date", "role": "event_time"}, "at": {"type": "string", "role": "ignore"}},
        })


def test_year_month_name_and_day_columns_are_the_event_time_and_an_impossible_date_is_quarantined(
    tmp_path: Path,
) -> None:
    """Hotel-booking style: `arrival_date_year`, `arrival_date_month` (`July`), `arrival_date_day_of_month`;
    a week number is not a day. `30 February` is quarantined, named; the rest are that day at 00:00 UTC."""
    import calendar

    days = [date(2015, 7, 1) + timedelta(days=i // 2) for i in range(120)]
    lines = ["lead,arrival_date_year,arrival_date_month,arrival_date_week_number,arrival_date_day_of_month,y"]
    lines += [f"{i % 30},{d.year},{calendar.month_name[d.month]},{d.isocalendar()[1]},{d.day},{i % 7 * 1.5}"
              for i, d in enumerate(days)]
    lines.append("3,2016,February,9,30,2.5")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = infer_config(tmp_path / "d.csv", target="y", notes=[])
    assert config.schema.event_time.kind == "date_parts"
    assert config.schema.event_time.columns == ["arrival_date_year", "arrival_date_month", "arrival_date_day_of_month"]
    raw = pl.read_csv(tmp_path / "d.csv", infer_schema=False).with_columns(
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("_line"))
    clean, quarantine = clean_frame(raw, config, INGESTED)
    assert quarantine["_reason"].to_list() == [
        "arrival_date_year, arrival_date_month, arrival_date_day_of_month: 2016-February-30 is not a date"]
    stamps = clean.sort("_line")[EVENT_TIMESTAMP].dt.replace_time_zone(None).to_list()
    assert stamps[0] == datetime(2015, 7, 1) and stamps[-1] == datetime(2015, 8, 29) and len(stamps) == 120


def test_an_hour_outside_the_day_is_quarantined_not_carried_into_tomorrow(tmp_path: Path) -> None:
    lines = ["day,hr,x,y"] + [f"2021-03-{1 + i // 24:02d},{i % 24},{i % 5},{i % 7}.5" for i in range(48)]
    lines.append("2021-03-02,25,1,2.5")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = infer_config(tmp_path / "d.csv", target="y", timestamps=["day", "hr"], notes=[])
    assert config.schema.event_time.kind == "date_hour"
    raw = pl.read_csv(tmp_path / "d.csv", infer_schema=False).with_columns(
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("_line"))
    _, quarantine = clean_frame(raw, config, INGESTED)
    assert quarantine["_reason"].to_list() == ["hr: 25 is not an hour of the day (0-23)"]
