"""`conveyor init`'s inference on messy files: what it tolerates, and what it says."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from conveyor.core import DataError
from conveyor.stages.sources import infer_config


def _rows(count: int = 100) -> list[list[str]]:
    return [[str(i), f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00", f"{i / 10:.1f}", str(i % 7), f"{i * 2}.5"]
            for i in range(count)]


def _write(path: Path, rows: list[list[str]], sep: str = ",", header: str = "id,ts,x,n,y") -> Path:
    path.write_text(header.replace(",", sep) + "\n" + "\n".join(sep.join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_two_percent_junk_keeps_the_type_and_the_event_time_and_is_reported(tmp_path: Path) -> None:
    rows = _rows()
    rows[10][1] = "2024-02-30 10:00:00"
    rows[50][1] = "tbd"
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=notes)
    assert config.schema.columns["ts"].type == "datetime"
    assert config.schema.event_time.columns == ["ts"]
    said = "\n".join(notes)
    assert "ts: datetime for 98.0% of its values; 2 value(s)" in said
    assert "'2024-02-30 10:00:00' (line 12)" in said and "'tbd' (line 52)" in said
    assert "ts: datetime, event_time: the event time: the first datetime column" in said
    rows[60][1] = "later"  # a third: 97 %, under the type threshold, but still the only event time there is
    notes = []
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=notes)
    assert config.schema.columns["ts"].type == "datetime" and config.schema.event_time.columns == ["ts"]
    assert any(n.startswith("event time: ts looked like the event time, but 3 of its values (3.0%)") for n in notes)
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=[], type_threshold=0.95)
    assert config.schema.columns["ts"].type == "datetime"


def test_missing_tokens_are_found_per_column_and_listed(tmp_path: Path) -> None:
    rows = _rows()
    rows[3][2], rows[4][2], rows[5][2] = "-", "unknown", "?"
    rows[6][3] = "n/a"
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=notes)
    assert config.schema.columns["x"].type == "float" and config.schema.columns["n"].type == "integer"
    assert sorted(config.cleaning.missing_tokens["x"]) == ["-", "unknown"]
    assert "n" not in config.cleaning.missing_tokens  # n/a is a built-in token
    assert any(note.startswith("x: '-' (1), 'unknown' (1) read as missing") or
               note.startswith("x: 'unknown' (1), '-' (1) read as missing") for note in notes), notes


def test_a_word_like_unknown_is_a_level_of_a_text_column(tmp_path: Path) -> None:
    rows = [[r[0], r[1], ["red", "blue", "unknown"][i % 3], r[3], r[4]] for i, r in enumerate(_rows())]
    config = infer_config(_write(tmp_path / "d.csv", rows, header="id,ts,colour,n,y"), target="y", notes=[])
    assert config.schema.columns["colour"].type == "string" and "colour" not in config.cleaning.missing_tokens


def test_decimal_commas_and_thousands_separators(tmp_path: Path) -> None:
    rows = [[r[0], r[1], r[2].replace(".", ","), r[3], r[4].replace(".", ",")] for r in _rows()]
    config = infer_config(_write(tmp_path / "d.csv", rows, sep=";"), target="y", notes=[])
    assert (config.source.delimiter, config.source.decimal, config.source.thousands) == (";", ",", None)
    assert config.schema.columns["x"].type == "float"
    rows = [[r[0], r[1], r[2], f'"{int(r[0]) * 1234:,}"', r[4]] for r in _rows()]
    config = infer_config(_write(tmp_path / "t.csv", rows), target="y", notes=[])
    assert config.source.thousands == "," and config.schema.columns["n"].type == "integer"


def test_a_few_unreadable_rows_are_quarantined_many_stop_init(tmp_path: Path) -> None:
    rows = _rows()
    rows[20].append("extra")
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=notes)
    assert config.source.on_bad_lines == "quarantine"
    assert any("1 unreadable row(s)" in n and "line 22" in n for n in notes), notes
    for row in rows[30:40]:
        row.append("extra")
    with pytest.raises(DataError, match=r"line 22 has 6 fields.*11% of the rows"):
        infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=[])


def test_timestamp_errors_quote_a_value_that_is_not_a_date(tmp_path: Path) -> None:
    rows = [[*r[:4], "2024-01-01" if i == 0 else f"note {i}", r[4]] for i, r in enumerate(_rows())]
    path = _write(tmp_path / "d.csv", rows, header="id,ts,x,n,note,y")
    with pytest.raises(DataError, match=r"--timestamp note: values like 'note 1' are not dates"):
        infer_config(path, target="y", timestamps=["note"], notes=[])


def test_parquet_sources_keep_their_types(tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3], "when": ["2024-01-01 10:00:00"] * 3, "x": [0.5, None, 1.5],
                          "y": [1.0, 2.0, 3.0]}).with_columns(pl.col("when").str.to_datetime())
    frame.write_parquet(tmp_path / "d.parquet")
    config = infer_config(tmp_path / "d.parquet", target="y", notes=[])
    assert config.source.kind == "parquet"
    assert {n: c.type for n, c in config.schema.columns.items()} == {
        "id": "integer", "when": "datetime", "x": "float", "y": "float"}
    assert config.schema.event_time.columns == ["when"]


def test_notes_are_printed_when_not_collected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    infer_config(_write(tmp_path / "d.csv", _rows()), target="y")
    assert "init: id: integer, id: unique on every row" in capsys.readouterr().err


@pytest.mark.parametrize(("hour", "split"), [("visit_hour", True), ("Hour of day", True), ("pickupHour", True),
                                             ("hourly_rate", False), ("shr", False)])
def test_a_date_and_an_hour_column_make_the_event_time(tmp_path: Path, hour: str, split: bool) -> None:
    rows = [[f"2024-03-{1 + i // 24:02d}", str(i % 24), f"{i * 1.5:.1f}"] for i in range(120)]
    config = infer_config(_write(tmp_path / "d.csv", rows, header=f"visit_date,{hour},y"), target="y", notes=[])
    event = config.schema.event_time
    if split:
        assert (event.kind, event.columns) == ("date_hour", ["visit_date", hour])
    else:
        assert (event.kind, event.columns) == ("datetime", ["visit_date"])


def _dated(count: int, bad_every: int | None) -> str:
    """`when,x,y` rows with an ISO date, one in `bad_every` written some other way."""
    lines = ["when,x,y"]
    for i in range(count):
        day = f"2024-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"
        if bad_every and i % bad_every == 3:
            day = ["31/12/2024", "2024-02-30", "soon"][i // bad_every % 3]
        lines.append(f"{day},{i % 13 / 4},{i % 7}.5")
    return "\n".join(lines) + "\n"


def test_five_percent_bad_dates_are_named_and_the_column_stays_the_event_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "d.csv").write_text(_dated(400, 20), encoding="utf-8")  # 20 of 400 dates do not parse: 5 %
    out = tmp_path / "conveyor.yaml"
    result = subprocess.run([sys.executable, "-m", "conveyor", "init", "--csv", str(tmp_path / "d.csv"), "--target", "y",
                             "-o", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # the notes are on stderr, whatever the terminal's width
    assert "init: event time: when looked like the event time, but 20 of its values (5.0%) do not parse as a date" in said
    assert "'31/12/2024' (line 5)" in said and "'2024-02-30' (line 25)" in said and "'soon' (line 45)" in said
    assert "chosen as the event time all the same: prepare quarantines those rows" in said
    assert "init: event time" not in result.stdout
    from conveyor.core.config import load_config

    config = load_config(out)
    assert config.schema.event_time.columns == ["when"] and config.schema.columns["when"].type == "date"


def test_a_column_of_mostly_bad_dates_is_named_and_the_ingest_time_chosen(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(_dated(400, 4), encoding="utf-8")  # one in four: 25 % do not parse
    notes: list[str] = []
    config = infer_config(tmp_path / "d.csv", target="y", notes=notes)
    assert config.schema.event_time.kind == "ingest_time"
    note = next(n for n in notes if n.startswith("event time: when looked like"))
    assert "100 of its values (25.0%) do not parse as a date" in note and "the time of the ingest" in note


def test_nan_in_a_number_column_is_listed_as_its_missing_token(tmp_path: Path) -> None:
    rows = _rows()
    rows[7][2], rows[8][2] = "NaN", "NaN"  # x: pandas' missing number
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", rows), target="y", notes=notes)
    assert config.schema.columns["x"].type == "float"
    assert config.cleaning.missing_tokens == {"x": ["NaN"]}
    assert any(n.startswith("x: uses 'NaN' for a missing number") for n in notes), notes
    assert "x: 'NaN' (2) read as missing (cleaning.missing_tokens)" in notes


def test_columns_named_like_polars_own_count_columns_are_plain_data(tmp_path: Path) -> None:
    """`count`, `n` and `value` are names a user's file has; init's own counting must not clash with them."""
    rows = [[("?" if i == 3 else "NaN" if i == 7 else str(i % 9)), f"k{i % 25}", str(i % 4),
             f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00", f"{i * 1.5}"] for i in range(200)]
    notes: list[str] = []
    config = infer_config(_write(tmp_path / "d.csv", rows, header="count,n,value,ts,y"), target="y", notes=notes)
    assert config.schema.columns["count"].type == "integer"
    assert config.cleaning.missing_tokens["count"] == ["NaN"]  # `?` is a missing value already
    assert any(note.startswith("n: ") and "per key" in note for note in notes), notes  # an entity, counted per key


def test_a_number_code_for_missing_is_read_as_missing_and_said(tmp_path: Path) -> None:
    """`-200` in an air-quality file, `9999` in an export: one whole number, repeated, far from the
    rest. A real negative value, a rare outlier and a small code like -1 are left alone."""
    import random

    from conveyor.stages.prep import clean_frame

    rng = random.Random(4)
    lines = ["co;nox;temp;balance;age;y"]
    for i in range(400):
        co = "-200" if i % 25 == 3 else f"{rng.uniform(0.1, 11.9):.1f}"
        nox = "9999" if i % 40 == 5 else str(rng.randint(2, 1479))
        balance = "-999" if i == 7 else f"{rng.uniform(-500, 500):.2f}"  # once: an outlier, not a code
        age = "-1" if i % 20 == 0 else str(rng.randint(18, 90))
        lines.append(f"{co};{nox};{rng.uniform(-5, 40):.1f};{balance};{age};{i % 9 * 1.5 + rng.random():.3f}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    notes: list[str] = []
    config = infer_config(tmp_path / "d.csv", target="y", notes=notes)
    assert config.cleaning.null_values == {"co": [-200], "nox": [9999]}
    said = [n for n in notes if "lies apart" in n]
    assert said[0].startswith("co: -200 on 16 rows (4.0%) lies apart from every other value (0.1 .. 11.9")
    assert "remove it there if -200 is a real value" in said[0]
    assert not any("no target value" in n for n in notes)
    raw = pl.read_csv(tmp_path / "d.csv", separator=";", infer_schema=False)
    raw = raw.with_columns(pl.Series("_line", range(2, raw.height + 2), dtype=pl.Int64))
    clean, quarantine = clean_frame(raw, config, "2026-01-02T03:04:05+00:00")
    assert quarantine.height == 0 and clean.height == 400
    assert clean["co"].null_count() == 16 and clean["nox"].null_count() == 10 and clean["co"].min() > 0


def test_rows_without_a_target_are_announced(tmp_path: Path) -> None:
    lines = ["x;y"] + [f"{i};{'' if i % 10 == 0 else i * 2}" for i in range(50)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    notes: list[str] = []
    infer_config(tmp_path / "d.csv", target="y", notes=notes)
    assert "y: 5 of 50 rows have no target value; prepare will quarantine them" in " ".join(notes)


def test_infinities_in_a_number_column_are_no_missing_code(tmp_path: Path) -> None:
    lines = ["x;y"] + [f"{'inf' if i % 10 == 0 else i / 3:.3f};{i}" if i % 10 else f"inf;{i}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = infer_config(tmp_path / "d.csv", target="y", notes=[])
    assert config.cleaning.null_values == {}


def test_a_large_file_is_inferred_from_a_sample_in_file_order(tmp_path: Path) -> None:
    rows = _rows(3000)
    for i in (5, 1500, 2990):
        rows[i][4] = ""  # no target on three rows
    path = _write(tmp_path / "big.csv", rows)
    whole_notes: list[str] = []
    whole = infer_config(path, target="y", notes=whole_notes)
    notes: list[str] = []
    sampled = infer_config(path, target="y", notes=notes, sample_rows=500)
    assert not any("sample" in n for n in whole_notes)
    assert "source: 3,000 rows; inferred from a seeded sample of 500 of them, in file order" in "\n".join(notes)
    # the same types, roles and event time as from every row
    assert sampled.schema.columns == whole.schema.columns
    assert sampled.schema.event_time == whole.schema.event_time
    assert any(n.startswith("y: 3 of 3000 rows have no target value") for n in whole_notes)
    counted = [n for n in notes if n.startswith("y: ") and "have no target value" in n]
    assert all(" sampled rows have no target value" in n for n in counted)  # never the sample's count as the file's
