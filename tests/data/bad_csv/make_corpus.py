"""Writes the bad-CSV corpus and its manifest: `python tests/data/bad_csv/make_corpus.py`.

Each file is one real failure mode of files people download; `manifest.yaml` says, per file,
the `conveyor init` arguments and the expected outcome: the exact source lines quarantined
at ingest and at prepare, or the stage that fails and what its one-line message names.
The files are committed; this script documents how each was made and rebuilds them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
HEADER = ["id", "ts", "x", "n", "city", "y"]
CITIES = ["Zürich", "Köln", "Bern", "Genève", "Lyon"]


def base_rows(count: int = 100) -> list[list[str]]:
    rows = []
    for i in range(1, count + 1):
        ts = f"2024-01-{1 + (i - 1) // 24:02d} {(i - 1) % 24:02d}:00:00"
        rows.append([str(i), ts, f"{(i * 37 % 101) / 10:.1f}", str(i * 7 % 50), CITIES[i % 5], f"{i * 1.5 + (i % 7):.2f}"])
    return rows


def text(rows: list[list[str]], header: list[str] = HEADER, sep: str = ",", end: str = "\n") -> str:
    return end.join(sep.join(r) for r in [header, *rows]) + end


CASES: list[dict[str, Any]] = []


def case(name: str, content: bytes | str, init: list[str] | None = None, **expect: Any) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    (HERE / name).write_bytes(data)
    entry: dict[str, Any] = {"file": name, "init": init if init is not None else ["--target", "y"]}
    entry.update(expect)
    entry.setdefault("expect", "ok")
    if entry["expect"] == "ok":
        entry.setdefault("ingest_quarantined", [])
        entry.setdefault("prepare_quarantined", [])
    CASES.append(entry)


def with_cell(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    """Row `row` is the 1-based data row (source line row + 1 in a plain file)."""
    out = [list(r) for r in rows]
    out[row - 1][HEADER.index(column)] = value
    return out


def build() -> None:
    rows = base_rows()
    case("ok_plain.csv", text(rows), rows=100, columns={"x": "float", "n": "integer", "ts": "datetime"})
    case("bom.csv", b"\xef\xbb\xbf" + text(rows).encode(), rows=100, source={"encoding": "utf-8-sig"})
    case("cp1252.csv", text(rows).encode("cp1252"), rows=100, source={"encoding": "cp1252"}, city="Zürich")
    case("utf16_tabs.csv", text(rows, sep="\t").encode("utf-16"), rows=100,
         source={"encoding": "utf-16", "delimiter": "\t"}, city="Zürich")
    mixed = text(rows).encode().replace("Genève".encode(), "Genève".encode("cp1252"), 1)
    first_geneve = 1 + next(i for i, r in enumerate(rows, 1) if r[4] == "Genève")
    case("mixed_encoding.csv", mixed, rows=100, source={"encoding": "utf-8", "on_bad_lines": "quarantine"},
         ingest_quarantined=[first_geneve], city="Zürich")
    lines = text(rows).splitlines()
    lines[10] += ",extra"  # line 11: 7 fields
    lines[40] = ",".join(lines[40].split(",")[:4])  # line 41: 4 fields
    case("ragged_rows.csv", "\n".join(lines) + "\n", rows=100, source={"on_bad_lines": "quarantine"},
         ingest_quarantined=[11, 41])
    lines = text(rows).splitlines()
    for i in range(5, 25):
        lines[i] += ",1,2"
    case("too_many_ragged.csv", "\n".join(lines) + "\n", expect="fail", stage="init",
         message=["line 6 has 8 fields, the header has 6", "20 row(s)"])
    lines = text(rows).splitlines()
    lines[11] = '11,2024-01-01 10:00:00,1.0,1,"Bern,3.5'  # line 12: the quote never closes
    case("unterminated_quote.csv", "\n".join(lines) + "\n", expect="fail", stage="init",
         message=["line 12, column 5 (city)", "never closed"])
    lines = text(rows).splitlines()
    parts = lines[3].split(",")
    lines[3] = ",".join([*parts[:4], '"Bern\nCentre\nVille"', parts[5]])  # the row of line 4 spans 3 lines
    lines[20] = lines[20].replace(lines[20].split(",")[2], "warm", 1)  # line 21 + 2 = 23
    lines[30] = ",".join(lines[30].split(",")[:2] + ["1.0", "3", '"Lyon, ""old town"""', lines[30].split(",")[-1]])
    case("embedded_newlines.csv", "\n".join(lines) + "\n", rows=100, prepare_quarantined=[23],
         reasons={23: "x: 'warm' is not a valid float"})
    semi = [[c.replace(".", ",") if k in (2, 5) else c for k, c in enumerate(r)] for r in rows]
    case("semicolon_decimal_comma.csv", text(semi, sep=";"), rows=100,
         source={"delimiter": ";", "decimal": ","}, columns={"x": "float", "y": "float"}, run=True)
    big = [[*r[:3], f'"{int(r[3]) * 1000 + 234:,}"', *r[4:]] for r in rows]
    case("thousands.csv", text(big), rows=100, source={"thousands": ","}, columns={"n": "integer"})
    case("inf_in_float.csv", text(with_cell(rows, 30, "x", "inf")), rows=100, columns={"x": "float"},
         prepare_quarantined=[31], reasons={31: "x: 'inf' is not a finite number"})
    case("infinity_in_target.csv", text(with_cell(rows, 50, "y", "Infinity")), rows=100,
         prepare_quarantined=[51], reasons={51: "y: 'Infinity' is not a finite number"})
    case("int_1e30.csv", text(with_cell(rows, 20, "n", "1e30")), rows=100, columns={"n": "integer"},
         prepare_quarantined=[21], reasons={21: "n: '1e30' is too large to be an exact integer"})
    case("int_inf.csv", text(with_cell(rows, 20, "n", "inf")), rows=100, columns={"n": "integer"},
         prepare_quarantined=[21], reasons={21: "n: 'inf' is not a finite number"})
    case("int_overflow.csv", text(with_cell(rows, 20, "n", "99999999999999999999")), rows=100,
         columns={"n": "integer"}, prepare_quarantined=[21],
         reasons={21: "n: '99999999999999999999' is out of the integer range (-2^63 .. 2^63-1)"})
    ids17 = [[str(12345678901234560 + i), *r[1:]] for i, r in enumerate(rows)]
    case("id_17_digits.csv", text(ids17), ["--target", "y", "--entity", "id"], rows=100, clean_rows=100,
         columns={"id": "integer"})
    ids20 = [[str(98765432109876543200 + i), *r[1:]] for i, r in enumerate(rows)]
    case("id_20_digits.csv", text(ids20), ["--target", "y", "--entity", "id"], rows=100, clean_rows=100,
         columns={"id": "string"})
    case("bad_value_in_id.csv", text(with_cell(rows, 7, "id", "abc")), ["--target", "y", "--entity", "id"],
         rows=100, prepare_quarantined=[8], reasons={8: "id: 'abc' is not a valid integer"})
    dup = text(rows, header=["id", "ts", "x", "x", "city", "y"])
    case("duplicate_headers.csv", dup, expect="fail", stage="init", message=["line 1, column 4", "'x' is repeated"])
    case("empty_header_cell.csv", text(rows, header=["id", "ts", "x", "", "city", "y"]), rows=100,
         columns={"column_4": "integer"})
    case("header_only.csv", ",".join(HEADER) + "\n", expect="fail", stage="init", message=["no data rows"])
    case("empty.csv", b"", expect="fail", stage="init", message=["empty"])
    case("binary_nul.csv", b"id,y\n1,\x00\x01\x02\n", expect="fail", stage="init", message=["line 2", "binary data"])
    case("excel_renamed.csv", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, expect="fail", stage="init",
         message=["Excel"])
    lines = text(rows).splitlines()
    lines.insert(5, "")
    lines.insert(9, "   ")
    lines[30] = lines[30].replace(lines[30].split(",")[2], "n/a?", 1)  # line 31
    case("blank_lines.csv", "\n".join(lines) + "\n\n\n", rows=100, prepare_quarantined=[31],
         reasons={31: "x: 'n/a?' is not a valid float"})
    case("trailing_delimiter.csv", text([[*r, ""] for r in rows], header=[*HEADER, ""]), rows=100,
         columns={"column_7": "string"})
    case("crlf.csv", text(with_cell(rows, 9, "ts", "yesterday"), end="\r\n"), rows=100, prepare_quarantined=[10])
    case("cr_only.csv", text(with_cell(rows, 9, "ts", "yesterday"), end="\r"), rows=100, prepare_quarantined=[10])
    case("tabs.csv", text(rows, sep="\t"), rows=100, source={"delimiter": "\t"})
    tokens = with_cell(with_cell(with_cell(rows, 3, "x", "?"), 4, "x", "-"), 5, "x", "unknown")
    tokens = with_cell(with_cell(tokens, 6, "n", "NA"), 7, "city", "-")
    case("missing_tokens.csv", text(tokens), rows=100, columns={"x": "float", "n": "integer"},
         missing_tokens={"x": ["-", "unknown"], "city": ["-"]})
    junk = with_cell(with_cell(rows, 30, "ts", "2024-13-45 99:00:00"), 60, "ts", "see notes")
    case("dates_2pct_junk.csv", text(junk), rows=100, event_time=["ts"], prepare_quarantined=[31, 61],
         reasons={31: "ts: '2024-13-45 99:00:00' is not a valid datetime"}, run=True)
    split = [[r[0], r[1][:10], str(int(r[1][11:13])), *r[2:]] for r in rows]
    case("split_date_hour.csv", text(split, header=["id", "day", "hour", "x", "n", "city", "y"]), rows=100,
         event_time=["day", "hour"])
    quoted = '"' + '","'.join(HEADER) + '"\n' + "\n".join(",".join(r) for r in with_cell(rows, 4, "y", "5e+05")) + "\n"
    case("quoted_header_scientific.csv", quoted, rows=100, columns={"y": "float"})
    padded = [[f" {c} " if k in (2, 3) else c for k, c in enumerate(r)] for r in rows]
    case("whitespace_padded.csv", text(padded), rows=100, columns={"x": "float", "n": "integer"})
    case("no_such_target.csv", text(rows), ["--target", "price"], expect="fail", stage="init",
         message=["line 1", "no column named 'price'"])
    noted = [[*r, "hello" if k else "2024-01-01"] for k, r in enumerate(rows)]
    case("timestamp_not_dates.csv", text(noted, header=[*HEADER, "note"]), ["--target", "y", "--timestamp", "note"],
         expect="fail", stage="init", message=["--timestamp note", "'hello'"])
    stray = [list(r) for r in rows]
    stray[14][4] = 'Bern 5" map'
    case("stray_quote.csv", text(stray), rows=100, city='Bern 5" map')
    dupkey = [list(r) for r in rows]
    dupkey[41] = [dupkey[40][0], dupkey[40][1], *dupkey[41][2:]]
    case("duplicate_key_time.csv", text(dupkey), ["--target", "y", "--entity", "id"], rows=100,
         prepare_quarantined=[43], reasons={43: "id: duplicate entity key 41 at the same event time"})
    case("nan_target.csv", text(with_cell(rows, 12, "y", "NaN")), rows=100, prepare_quarantined=[13],
         reasons={13: "y: the target is missing"})
    wide = [list(r) for r in rows]
    wide[70][4] = "x" * 3000
    case("long_field.csv", text(wide), rows=100, columns={"city": "string"})
    _parquet(rows)
    (HERE / "manifest.yaml").write_text(
        "# Expected outcome per corpus file; written by make_corpus.py, read by tests/e2e/test_intake_corpus.py\n"
        + yaml.safe_dump(CASES, sort_keys=False, allow_unicode=True, width=120),
        encoding="utf-8",
    )


def _parquet(rows: list[list[str]]) -> None:
    import polars as pl

    frame = pl.DataFrame({
        "id": [int(r[0]) for r in rows],
        "ts": pl.Series([r[1] for r in rows]).str.to_datetime(),
        "x": [float(r[2]) for r in rows],
        "n": [int(r[3]) for r in rows],
        "city": [r[4] for r in rows],
        "y": [float(r[5]) if i != 9 else None for i, r in enumerate(rows)],
    })
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    (HERE / "parquet_source.parquet").write_bytes(buffer.getvalue())
    CASES.append({"file": "parquet_source.parquet", "init": ["--target", "y"], "expect": "ok", "rows": 100,
                  "source": {"kind": "parquet"}, "columns": {"ts": "datetime", "n": "integer", "x": "float"},
                  "ingest_quarantined": [], "prepare_quarantined": [10],
                  "reasons": {10: "y: the target is missing"}})


if __name__ == "__main__":
    build()
    print(f"{len(CASES)} files in {HERE}")
