"""Compressed CSV sources: read through (gzip, bzip2, xz, a zip of one CSV) or refused by name."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import polars as pl
import pytest

from conveyor.core import DataError
from conveyor.core.config import dump_config, load_config
from conveyor.core.workspace import Workspace
from conveyor.stages.sources import infer_config
from conveyor.stages.sources._ingest import ingest
from tests.conftest import BIKE_CSV


def _snapshot(folder: Path, source: Path) -> tuple[pl.DataFrame, str]:
    """Init and ingest `source` in a project of its own: the snapshot's rows and its source hash."""
    folder.mkdir()
    config = infer_config(source, target="cnt", timestamps=["dteday", "hr"], source_path=str(source), notes=[])
    dump_config(config, folder / "conveyor.yaml")
    artifact = ingest(load_config(folder / "conveyor.yaml"), Workspace.at(folder))
    return pl.read_parquet(artifact.path), artifact.inputs["source_file"]


def test_a_gzipped_csv_gives_the_same_snapshot_rows_as_the_plain_file(tmp_path: Path) -> None:
    packed = tmp_path / "bike.csv.gz"
    packed.write_bytes(gzip.compress(BIKE_CSV.read_bytes()))
    plain_rows, plain_hash = _snapshot(tmp_path / "plain", BIKE_CSV)
    packed_rows, packed_hash = _snapshot(tmp_path / "packed", packed)
    assert packed_rows.height == plain_rows.height == 17379
    assert packed_rows.equals(plain_rows)  # every value and every line number
    assert packed_hash != plain_hash  # the hash is of the file as stored: the compressed bytes
    assert not list((tmp_path / "packed" / "data" / "raw").glob("*/decompressed-*"))


@pytest.mark.parametrize("pack", ["bzip2", "xz", "zip"])
def test_other_standard_compressions_are_read(tmp_path: Path, pack: str) -> None:
    text = b"id,x,y\n" + b"".join(b"%d,%d.5,%d\n" % (i, i, i % 3) for i in range(60))
    path = tmp_path / f"d.csv.{ {'bzip2': 'bz2'}.get(pack, pack)}"
    if pack == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("d.csv", text)
    else:
        path.write_bytes(bz2.compress(text) if pack == "bzip2" else lzma.compress(text))
    notes: list[str] = []
    config = infer_config(path, target="y", notes=notes)
    assert config.source.path == str(path) and config.name == "d"
    assert config.schema.columns["x"].type == "float"
    assert notes[0] == f"source: compressed with {pack}; read decompressed (ingest does the same)"


@pytest.mark.parametrize(("content", "message"), [
    (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "d.csv.gz: compressed with zstd, which Conveyor does not read"),
    (gzip.compress(b"id,y\n1,2\n" * 50, mtime=0)[:-12], "d.csv.gz: compressed with gzip, but it cannot be decompressed"),
], ids=["zstd", "truncated-gzip"])  # ids of their own: test ids must be the same in every xdist worker
def test_unreadable_compressed_files_are_named_by_their_compressor(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "d.csv.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        infer_config(path, target="y", notes=[])
    assert "binary data" not in str(caught.value)


def test_a_zip_of_several_files_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "id,y\n1,2\n")
        archive.writestr("b.csv", "id,y\n1,2\n")
    with pytest.raises(DataError, match=r"compressed with zip, with 2 files in it \(a.csv, b.csv\)"):
        infer_config(path, target="y", notes=[])


def test_an_excel_file_renamed_csv_is_still_told_to_be_exported(tmp_path: Path) -> None:
    broken = tmp_path / "sheet.csv"
    broken.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40)
    with pytest.raises(DataError, match="line 1: binary data \\(a zip archive, e.g. an Excel .xlsx file\\)"):
        infer_config(broken, target="y", notes=[])
    xlsx = tmp_path / "book.csv"
    with zipfile.ZipFile(xlsx, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(DataError, match="binary data \\(a zip archive, e.g. an Excel .xlsx file\\)"):
        infer_config(xlsx, target="y", notes=[])
