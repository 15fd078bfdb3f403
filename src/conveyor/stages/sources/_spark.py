"""Ingest on Apache Spark (`engine: spark`): a file, a folder of parts or a glob, CSV or Parquet.

The snapshot is the Polars engine's: every value as text, `_line` the source line of each row
(the row number, for Parquet), plus `_file` when the source is several files.

How a CSV is read, without one process ever holding the file:

- Spark reads every part as lines. Each line's number is its position in its file: the
  number of lines in the file's earlier splits (counted first, one small job) plus its
  position in its own split (`monotonically_increasing_id` is consecutive within a split).
- A line is *well-formed* when its quotes only open and close whole fields
  (`"a ""b"" c"`). Well-formed lines with the header's field count are split into fields by
  Spark's own CSV parser (`from_csv`, RFC 4180 quoting).
- The few other well-formed lines (a field count not the header's, bytes that are not
  UTF-8, a line longer than `source.max_field_bytes`) are explained on the driver by the
  very code the Polars engine uses, so their quarantine lines and reasons are the same.
- A part holding a line that is not well-formed (a quoted field spanning lines, a stray
  `"` inside a field, an unterminated quote) is read by the Polars engine's line-exact reader
  on the driver, as the Polars engine itself does, and joined to the snapshot.

Parquet parts are read by Spark; `_line` is Spark's `_metadata.row_index` + 1, and values
become text through Polars in each task (the Polars engine's casts, so the same text).
"""

from __future__ import annotations

import codecs
import csv
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from conveyor.core.config import Config, SourceConfig
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_file, hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.sources._csv import (
    LINE_COLUMN,
    BadLine,
    CsvRead,
    _check_header,
    _explain,
    check_readable,
    read_csv_snapshot,
    read_header,
)
from conveyor.stages.spark import column, positional

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["FILE_COLUMN", "read_on_spark", "source_files", "spark_source_hash"]

FILE_COLUMN = "_file"
"""Column of a snapshot made from several files: the part the row comes from (relative to the source)."""

_BLOCK = "__block"
_MID = "__mid"
_TEXT = "__text"
_GLOB = ("*", "?", "[")


# --------------------------------------------------------------------------- the parts


def source_files(config: Config, workspace: Workspace) -> tuple[list[Path], Path]:
    """The source's files, sorted, and the folder their names are taken relative to.

    `source.path` is a file, a folder (every file under it, but names starting with `_` or
    `.`, as Spark skips them) or a glob (`data/part-*.csv`, `lake/**/*.parquet`).
    """
    text = config.source.path or ""  # csv and parquet sources have a path (the config checks it)
    path = workspace.resolve(text)
    if any(ch in text for ch in _GLOB):
        found = [Path(p) for p in glob.glob(str(path), recursive=True)]
        files = sorted(p for p in found if p.is_file() and _visible(p))
        static = Path(*path.parts[: _static_depth(path)])
        base = static if static.is_dir() else path.parent
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p.relative_to(path)))
        base = path
    elif path.is_file():
        return [path], path.parent
    else:
        raise DataError(f"{path}: source not found (source.path in {workspace.config_file}: a file, a folder or a glob)")
    if not files:
        raise DataError(f"{path}: no files match source.path ({text!r}); names starting with '_' or '.' are skipped")
    return files, base


def _static_depth(path: Path) -> int:
    for index, part in enumerate(path.parts):
        if any(ch in part for ch in _GLOB):
            return index
    return len(path.parts)


def _visible(relative: Path) -> bool:
    return not any(part.startswith(("_", ".")) for part in relative.parts)


def spark_source_hash(files: list[Path], base: Path) -> tuple[str, str]:
    """The source's content hash and what it hashes.

    One file: the SHA-256 of its bytes (`bytes`), as the Polars engine. Several: the SHA-256
    of the listing (`listing`): each part's name relative to the source folder, its size and
    its modification time, since reading every byte of a lake on the driver defeats the
    point; a part rewritten in place with the same size and time is not seen.
    """
    if len(files) == 1:
        return hash_file(files[0]), "bytes"
    listing = []
    for path in files:
        stat = path.stat()
        listing.append([path.relative_to(base).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hash_json(listing), "listing"


# --------------------------------------------------------------------------- reading


def read_on_spark(
    config: Config, files: list[Path], base: Path, out: Path, *, workdir: Path, bad_line_limit: int | None = None
) -> CsvRead:
    """Write the source to the folder `out` as all-text Parquet plus `_line` (and `_file`); return the bad rows."""
    from conveyor.stages.spark import spark_session

    session = spark_session(config.spark, config.name)
    names = {p.resolve(): p.relative_to(base).as_posix() for p in files}
    if config.source.kind == "parquet":
        return _read_parquet(session, files, names, out)
    return _read_csv(session, config.source, files, names, out, workdir, bad_line_limit)


def _spark_path(path: Path) -> str:
    """A local file as Spark's `_metadata.file_path` names it."""
    return path.resolve().as_uri()


def _local(spark_path: str) -> Path:
    return Path(unquote(urlparse(spark_path).path))


def _write(frame: DataFrame, out: Path) -> int:
    """Write a frame as a folder of Parquet parts; the rows written."""
    frame.write.mode("overwrite").parquet(out.as_uri())
    for crc in out.glob(".*.crc"):  # Hadoop's checksums: not data, and Polars would try to read them
        crc.unlink()
    return int(frame.sparkSession.read.parquet(out.as_uri()).count())


def _file_column(names: dict[Path, str], seen: list[str], path: Column) -> Column:
    """A file's path as Spark gives it (`_metadata.file_path`) mapped to the part's name relative to
    the source (a small literal map). `seen`: those paths (`file:/...`, escaped), collected from Spark.
    """
    from pyspark.sql import functions as F

    pairs = [item for text in seen for item in (F.lit(text), F.lit(names[_local(text).resolve()]))]
    return F.create_map(*pairs)[path]


# --------------------------------------------------------------------------- Parquet


def _read_parquet(session: SparkSession, files: list[Path], names: dict[Path, str], out: Path) -> CsvRead:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    first = files[0]
    try:
        frame = session.read.parquet(*[_spark_path(p) for p in files])
        fields = frame.schema.fields
    except Exception as exc:  # an AnalysisException or a Spark error: not Parquet
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{first}: not a readable Parquet file ({message[:200]})") from None
    header = [f.name for f in fields]
    for index, f in enumerate(fields, start=1):
        if isinstance(f.dataType, (T.StructType, T.ArrayType, T.MapType, T.BinaryType)):
            raise DataError(
                f"{first}, column {index} ({f.name}): type {f.dataType.simpleString()} cannot be a feature; "
                "flatten it or leave it out of the file"
            )
        if f.name.startswith("_"):
            raise DataError(f"{first}, column {index}: column names starting with '_' are reserved ({f.name!r})")
    if len(header) < 2:
        raise DataError(f"{first}: the file has {len(header)} column(s); expected features and a target")
    several = len(files) > 1
    extra = []
    if several:
        seen = [r[0] for r in frame.select(F.col("_metadata.file_path")).distinct().collect()]
        extra = [_file_column(names, seen, F.col("_metadata.file_path")).alias(FILE_COLUMN)]
    numbered = frame.select(
        *[column(n) for n in header], (F.col("_metadata.row_index") + 1).alias(LINE_COLUMN), *extra
    )
    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in header]
        + [T.StructField(LINE_COLUMN, T.LongType())]
        + ([T.StructField(FILE_COLUMN, T.StringType())] if several else [])
    )
    safe, given = positional(numbered)
    text = safe.mapInArrow(_as_text(header, given), schema)
    rows = _write(text, out)
    if rows == 0:
        raise DataError(f"{first}: the file has no rows")
    return CsvRead(header, rows, [], "spark")


def _as_text(header: list[str], names: list[str]) -> Any:
    """The task function: every value as text, by the Polars engine's cast (the same text)."""

    def cast(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import polars as pl

        for batch in batches:
            frame = pl.from_arrow(batch.rename_columns(names))
            assert isinstance(frame, pl.DataFrame)
            done = frame.with_columns(pl.col(n).cast(pl.String) for n in header)
            yield from done.to_arrow().to_batches()

    return cast


# --------------------------------------------------------------------------- CSV


def _charset(source: SourceConfig, where: Path) -> str | None:
    """None for UTF-8 (read as it is), else the Java name of a single-byte code page."""
    name = codecs.lookup(source.encoding).name
    if name in ("utf-8", "utf-8-sig"):
        return None
    if len("\n".encode(name)) == 1 and all(len(bytes([b]).decode(name, errors="replace")) == 1 for b in range(256)):
        if name.startswith("cp") and name[2:].isdigit():
            return f"windows-{name[2:]}" if name.startswith("cp125") else f"IBM{name[2:]}"
        if name.startswith("iso8859-"):
            return "ISO-8859-" + name.removeprefix("iso8859-")
        if name == "latin-1":
            return "ISO-8859-1"
        return name
    raise DataError(
        f"{where}: source.encoding {source.encoding!r}: the Spark engine reads UTF-8 and single-byte code pages "
        "(cp1252, latin-1, ...) line by line; convert the file to UTF-8 (iconv -f "
        f"{source.encoding} -t utf-8) or set engine: polars"
    )


def _java_regex_char(char: str) -> str:
    return "\\" + char if char in "\\[]^-&" else ("\\t" if char == "\t" else char)


def _read_csv(
    session: SparkSession,
    source: SourceConfig,
    files: list[Path],
    names: dict[Path, str],
    out: Path,
    workdir: Path,
    bad_line_limit: int | None,
) -> CsvRead:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    first = files[0]
    check_readable(first)
    charset = _charset(source, first)
    delimiter = source.delimiter
    header = read_header(first, delimiter=delimiter, encoding=source.encoding)
    width = len(header)
    several = len(files) > 1

    lines = session.read.text([_spark_path(p) for p in files]).select(
        F.col("value"),
        F.col("_metadata.file_path").alias(FILE_COLUMN),
        F.col("_metadata.file_block_start").alias(_BLOCK),
        F.monotonically_increasing_id().alias(_MID),
    )
    numbered = _numbered(session, lines)
    text = F.decode(F.col("value").cast("binary"), charset) if charset else F.col("value")
    sep = _java_regex_char(delimiter)
    cell = f'(?:"(?:[^"]|"")*+"|[^"{sep}]*+)'
    quoted = '"(?:[^"]|"")*+"'
    fields = F.size(F.split(F.regexp_replace(F.col(_TEXT), quoted, ""), sep, -1))
    trailing = F.col(_TEXT).endswith(delimiter)
    checks = [
        ~F.col(_TEXT).rlike(f"^{cell}(?:{sep}{cell})*+$"),  # irregular: the line-exact reader reads the part
        (fields != width) & ~((fields == width + 1) & trailing),
        F.octet_length(F.col("value")) > source.max_field_bytes,
    ]
    if charset is None:
        checks.append(~F.expr("is_valid_utf8(value)"))
    annotated = numbered.withColumn(_TEXT, text).select(
        "*",
        checks[0].alias("__irregular"),
        (checks[1] | checks[2] | (checks[3] if len(checks) > 3 else F.lit(False))).alias("__suspect"),
        F.col(_TEXT).rlike(r"(?U)^\s*$").alias("__blank"),
    )
    body = annotated.where((F.col(LINE_COLUMN) > 1) & ~F.col("__blank"))

    first_line = F.first(F.when(F.col(LINE_COLUMN) == 1, F.col(_TEXT)), ignorenulls=True)
    irregular_line = F.max((F.col("__irregular") & (F.col(LINE_COLUMN) > 1) & ~F.col("__blank")).cast("int"))
    per_file = annotated.groupBy(FILE_COLUMN).agg(irregular_line.alias("irregular"), first_line.alias("header"))
    found = per_file.collect()  # one row per part
    seen = [str(r[FILE_COLUMN]) for r in found]
    irregular = sorted(_local(r[FILE_COLUMN]) for r in found if r["irregular"])
    _check_headers({_local(r[FILE_COLUMN]).resolve(): r["header"] for r in found}, files, header, delimiter)
    regular = body.where(~F.col(FILE_COLUMN).isin([r[FILE_COLUMN] for r in found if r["irregular"]]))

    bad: list[BadLine] = []
    kept: list[tuple[Any, ...]] = []
    suspects = regular.where(F.col("__suspect")).select(
        FILE_COLUMN, LINE_COLUMN, F.col("value").cast("binary").alias("raw"), _TEXT
    ).collect()  # the few rows to explain (the Polars engine keeps its bad rows in memory too)
    for row in sorted(suspects, key=lambda r: (r[FILE_COLUMN], r[LINE_COLUMN])):
        raw = bytes(row["raw"]) if charset is None else str(row[_TEXT]).encode("utf-8")
        part = names[_local(row[FILE_COLUMN]).resolve()]
        verdict = _explain(raw, int(row[LINE_COLUMN]), delimiter, header, source.max_field_bytes)
        if verdict == "blank":
            continue
        if isinstance(verdict, BadLine):
            bad.append(BadLine(verdict.line, verdict.reason, verdict.fields, file=part if several else None))
            if bad_line_limit is not None and len(bad) >= bad_line_limit:
                break
            continue
        record = next(csv.reader([raw.decode("utf-8")], delimiter=delimiter))
        kept.append((*record[:width], int(row[LINE_COLUMN]), part))

    options = {"sep": delimiter, "quote": '"', "escape": '"', "mode": "PERMISSIVE"}
    ddl = ", ".join(f"c{i} STRING" for i in range(width))
    parsed = F.from_csv(F.col(_TEXT), ddl, options)
    columns = [F.coalesce(parsed[f"c{i}"], F.lit("")).alias(name) for i, name in enumerate(header)]
    file_out = [_file_column(names, seen, F.col(FILE_COLUMN)).alias(FILE_COLUMN)] if several else []
    good = regular.where(~F.col("__suspect")).select(*columns, F.col(LINE_COLUMN), *file_out)

    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in header]
        + [T.StructField(LINE_COLUMN, T.LongType())]
        + ([T.StructField(FILE_COLUMN, T.StringType())] if several else [])
    )
    parts = [good]
    if kept:
        parts.append(session.createDataFrame([r if several else r[:-1] for r in kept], schema))
    for index, path in enumerate(irregular):
        exact = _exact_part(path, workdir / f"exact-{index}.parquet", source, header, workdir, bad_line_limit)
        part = names[path.resolve()]
        bad.extend(BadLine(b.line, b.reason, b.fields, file=part if several else None) for b in exact.bad)
        frame = session.read.parquet((workdir / f"exact-{index}.parquet").as_uri())
        parts.append(frame.select(*[column(n) for n in header], LINE_COLUMN,
                                  *([F.lit(part).alias(FILE_COLUMN)] if several else [])))
    union = parts[0]
    for frame in parts[1:]:
        union = union.unionByName(frame)
    rows = _write(union, out)
    bad.sort(key=lambda b: (b.file or "", b.line))
    if rows == 0 and not bad:
        raise DataError(f"{first}: the file has a header but no data rows")
    return CsvRead(header, rows, bad, "spark")


def _numbered(session: SparkSession, lines: DataFrame) -> DataFrame:
    """Lines with `_line`: the lines of the file's earlier splits plus the position in the split."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    splits = lines.groupBy(FILE_COLUMN, _BLOCK).agg(F.count("*").alias("n"), F.min(_MID).alias("first")).collect()
    table: list[tuple[str, int, int, int]] = []
    before: dict[str, int] = {}
    for row in sorted(splits, key=lambda r: (r[FILE_COLUMN], r[_BLOCK])):
        done = before.get(row[FILE_COLUMN], 0)
        table.append((row[FILE_COLUMN], int(row[_BLOCK]), int(row["first"]), done))
        before[row[FILE_COLUMN]] = done + int(row["n"])
    schema = T.StructType([
        T.StructField(FILE_COLUMN, T.StringType()), T.StructField(_BLOCK, T.LongType()),
        T.StructField("first", T.LongType()), T.StructField("base", T.LongType()),
    ])
    offsets = session.createDataFrame(table, schema)
    line = F.col(_MID) - F.col("first") + F.col("base") + 1
    return lines.join(F.broadcast(offsets), [FILE_COLUMN, _BLOCK]).select(
        "value", FILE_COLUMN, line.alias(LINE_COLUMN)
    )


def _check_headers(firsts: dict[Path, str | None], files: list[Path], header: list[str], delimiter: str) -> None:
    """Every part has the first part's header (line 1)."""
    if len(files) == 1:
        return
    for path in files:
        text = firsts.get(path.resolve())
        if text is None:
            raise DataError(f"{path}: the file is empty; expected a header line and data rows")
        names = [n.strip() or f"column_{i}" for i, n in enumerate(next(csv.reader([text.removeprefix("\ufeff")],
                                                                                  delimiter=delimiter)), 1)]
        _check_header(path, names, delimiter)
        if names != header:
            raise DataError(
                f"{path}, line 1: the header differs from {files[0].name}'s ({', '.join(names)} vs "
                f"{', '.join(header)}); every part of a source has the same columns"
            )


def _exact_part(
    path: Path, out: Path, source: SourceConfig, header: list[str], workdir: Path, bad_line_limit: int | None
) -> CsvRead:
    """A part with lines only a CSV reader can split (quoted newlines, stray quotes): the line-exact reader."""
    folder = workdir / f"{out.stem}-work"
    folder.mkdir()
    try:
        read = read_csv_snapshot(
            path, out, delimiter=source.delimiter, encoding=source.encoding,
            max_field_bytes=source.max_field_bytes, workdir=folder, bad_line_limit=bad_line_limit,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if read.header != header:
        raise DataError(f"{path}, line 1: the header differs from the first part's; every part has the same columns")
    return read


def remove_snapshot(path: Path) -> None:
    """An earlier snapshot at `path` (a file, or a Spark folder of parts)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        os.unlink(path)
