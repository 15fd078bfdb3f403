from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.core import DataError
from conveyor.stages.sources._csv import scan_csv, sniff_delimiter
from conveyor.stages.sources._infer import infer_type


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_sniff_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "d.csv"
    rows = [["a", "b", "c"], ["1", "2,5" if delimiter == ";" else "2", "x"], ["3", "4", "y"]]
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n")
    assert sniff_delimiter(path) == delimiter


def test_scan_keeps_line_numbers_across_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,note,v\n1,"two\nlines",3\n\n2,plain,4\n3,short\n')
    scanned = scan_csv(path, delimiter=",")
    assert scanned.lines == [2, 5]
    assert [r.line for r in scanned.ragged] == [6]
    assert scanned.frame()["note"].to_list() == ["two\nlines", "plain"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"a,b\n1,\x002\n", "binary data"),
        (b"a,b\n\xff\xfe\xfa,1\n" + b"x,y\n" * 10, "not valid utf-8"),
        (b"a,a\n1,2\n", "repeated"),
        (b"a,,c\n1,2,3\n", "empty column name"),
        (b"onlyone\n1\n", "delimiter"),
        (b"a,_line\n1,2\n", "reserved"),
    ],
)
def test_unreadable_input_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        scan_csv(path, delimiter=",")
    assert str(path) in str(error.value) and message in str(error.value)


def test_type_inference_on_messy_values() -> None:
    import polars as pl

    def kind(*values: str | None) -> str:
        return infer_type(pl.Series(list(values), dtype=pl.String))

    assert kind("1", "2", None, "-3") == "integer"
    assert kind("5e+05", "20000", "1.5E3") == "float"
    assert kind("yes", "no", "Yes") == "boolean"
    assert kind("2011-01-01", "2012-12-31") == "date"
    assert kind("2019-03-23 20:21:09", "2019-03-04 16:11:55") == "datetime"
    assert kind("a", "1") == "string"
    assert kind(None, None) == "string"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        ("name,city,y\nJosé,Zürich,1\nAna,Köln,0\n".encode(), "utf-8"),
        (b"\xef\xbb\xbf" + "name,city,y\nJosé,Zürich,1\nAna,Köln,0\n".encode(), "utf-8-sig"),
        ("name,city,y\nJosé,Zürich,1\nAna,Köln,0\n".encode("latin-1"), "latin-1"),
    ],
)
def test_init_detects_the_encoding_and_keeps_the_header_clean(tmp_path: Path, raw: bytes, encoding: str) -> None:
    from conveyor.stages.sources import infer_config

    path = tmp_path / "people.csv"
    path.write_bytes(raw)
    config = infer_config(path, target="y")
    assert config.source.encoding == encoding
    assert list(config.schema.columns) == ["name", "city", "y"]
    scanned = scan_csv(path, delimiter=",", encoding=encoding)
    assert scanned.frame()["city"].to_list() == ["Zürich", "Köln"]


def test_a_bom_read_as_plain_utf8_does_not_leak_into_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\n1,2\n")
    assert scan_csv(path, delimiter=",", encoding="utf-8").header == ["a", "b"]
