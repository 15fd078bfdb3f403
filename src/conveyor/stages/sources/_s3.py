"""CSV or Parquet objects in an S3-compatible store: one key, or every part under a prefix.

The endpoint, region and credentials are boto3's own: the standard AWS environment variables
(`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...)
or a profile, so any S3-compatible store works and nothing secret is in `conveyor.yaml`.

The cache key is cheap: the listing (keys, sizes, ETags), one request per 1,000 parts; no
object is read when nothing changed. Parts are read in key order, each one as a local file
of its kind (the CSV reader with its byte pass and quarantine, or Parquet) and appended to
one snapshot with `_object` (the part's URI) and `_object_line` (its line, or row, in the
part). `_line` stays unique across parts: a part's lines continue after the last line of the
part before it. Names starting with `_` or `.` (`_SUCCESS`, `.crc` files) are not parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.core.config import SourceConfig
from conveyor.core.errors import DataError
from conveyor.stages.sources._compressed import decompressed
from conveyor.stages.sources._csv import LINE_COLUMN, BadLine, CsvRead, read_csv_snapshot
from conveyor.stages.sources._read import parquet_text

__all__ = ["OBJECT_COLUMN", "OBJECT_LINE_COLUMN", "Part", "list_parts", "read_parts", "split_uri"]

OBJECT_COLUMN = "_object"
"""Column of an S3 snapshot: the URI of the part each row was read from."""
OBJECT_LINE_COLUMN = "_object_line"
"""Column of an S3 snapshot: the row's line in its part (CSV), or its 1-based row (Parquet)."""

_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Part:
    key: str
    size: int
    etag: str


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); the key is a prefix when it ends with `/` or is empty."""
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    return bucket, key


def _client() -> Any:
    try:
        import boto3  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise DataError("a source of kind s3 needs boto3: pip install 'conveyor[team]'") from None
    return boto3.client("s3")


def _fail(uri: str, exc: Exception) -> DataError:
    """A boto3/botocore error as one line: what, where, how to fix."""
    from botocore.exceptions import ClientError, NoCredentialsError  # type: ignore[import-untyped, unused-ignore]

    if isinstance(exc, NoCredentialsError):
        return DataError(f"{uri}: no AWS credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchBucket",):
            return DataError(f"{uri}: no such bucket (check source.uri and AWS_ENDPOINT_URL)")
        if code in ("404", "NoSuchKey"):
            return DataError(f"{uri}: no such object; a prefix of several parts ends with '/'")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return DataError(f"{uri}: access denied ({code}); check the AWS credentials in the environment")
        return DataError(f"{uri}: {code or 'error'}: {error.get('Message', '')}".rstrip(": "))
    return DataError(f"{uri}: cannot reach the object store ({' '.join(str(exc).split())}); check AWS_ENDPOINT_URL")


def _is_part(key: str, prefix: str) -> bool:
    name = PurePosixPath(key).name
    return not key.endswith("/") and bool(name) and not name.startswith(("_", ".")) and key != prefix


def list_parts(source: SourceConfig) -> list[Part]:
    """The objects the source reads, in key order: the one key, or every part under the prefix."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

    uri = source.uri or ""
    bucket, key = split_uri(uri)
    client = _client()
    try:
        if key and not key.endswith("/"):
            head = client.head_object(Bucket=bucket, Key=key)
            return [Part(key, int(head["ContentLength"]), str(head.get("ETag", "")))]
        parts: list[Part] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                if _is_part(str(item["Key"]), key):
                    parts.append(Part(str(item["Key"]), int(item["Size"]), str(item.get("ETag", ""))))
    except (BotoCoreError, ClientError) as exc:
        raise _fail(uri, exc) from None
    if not parts:
        raise DataError(f"{uri}: no objects under this prefix (check source.uri)")
    return sorted(parts, key=lambda part: part.key)


def part_format(source: SourceConfig, parts: list[Part]) -> str:
    """`csv` or `parquet`: `source.format`, else what every part's name says."""
    if source.format is not None:
        return source.format
    kinds = {_SUFFIXES.get(PurePosixPath(part.key).suffix.lower()) for part in parts}
    if len(kinds) == 1 and None not in kinds:
        return str(kinds.pop())
    names = ", ".join(sorted({PurePosixPath(p.key).suffix or "(none)" for p in parts}))
    raise DataError(f"{source.uri}: cannot tell the format from the names ({names}); set source.format: csv or parquet")


def _download(client: Any, bucket: str, parts: list[Part], workdir: Path, suffix: str) -> list[Path]:
    """Every part to a local file, a few at a time (an object store answers each request slowly)."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

    def one(index: int) -> Path:
        local = workdir / f"part-{index}{suffix}"
        try:
            client.download_file(bucket, parts[index].key, str(local))
        except (BotoCoreError, ClientError) as exc:
            raise _fail(f"s3://{bucket}/{parts[index].key}", exc) from None
        return local

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(len(parts))))


def read_parts(
    source: SourceConfig,
    parts: list[Part],
    out: Path,
    *,
    workdir: Path,
    bad_line_limit: int | None = None,
) -> CsvRead:
    """Download and read every part in key order into one all-text snapshot `out` (+ `_object`,
    `_object_line`); rows a CSV part cannot give are returned with their object and line.

    Parquet parts are cast to text lazily and written once, all together; a CSV part goes
    through the CSV reader (its byte pass finds the rows to set aside) to a Parquet file first."""
    import polars as pl

    bucket, _ = split_uri(source.uri or "")
    kind = part_format(source, parts)
    files = _download(_client(), bucket, parts, workdir, ".parquet" if kind == "parquet" else ".csv")
    header: list[str] | None = None
    first = ""
    frames: list[pl.LazyFrame] = []
    bad: list[BadLine] = []
    rows, offset, padded, reader = 0, 0, False, "parquet"
    for index, (part, local) in enumerate(zip(parts, files, strict=True)):
        uri = f"s3://{bucket}/{part.key}"
        if kind == "parquet":
            names, frame, count = parquet_text(local, uri)
            read = CsvRead(names, count, [], "parquet")
        else:
            snapshot = workdir / f"part-{index}.snapshot.parquet"
            limit = None if bad_line_limit is None else max(bad_line_limit - len(bad), 1)
            plain = decompressed(local, workdir, uri)
            try:
                read = read_csv_snapshot(
                    plain, snapshot, delimiter=source.delimiter, encoding=source.encoding,
                    max_field_bytes=source.max_field_bytes, workdir=workdir, bad_line_limit=limit,
                )
            except DataError as exc:
                message = str(exc).replace(str(plain), uri).replace(str(local), uri)
                if len(parts) > 1 and "no data rows" in message:
                    continue  # an empty part (a writer's empty partition): nothing to add
                raise DataError(message) from None
            local.unlink(missing_ok=True)
            plain.unlink(missing_ok=True)
            frame = pl.scan_parquet(snapshot)
        if read.rows == 0 and len(parts) > 1 and not read.bad:
            continue
        if header is None:
            header, first = read.header, uri
        elif sorted(read.header) != sorted(header):
            raise DataError(
                f"{uri}: its columns ({', '.join(read.header)}) differ from those of {first} "
                f"({', '.join(header)}); every part must have the same columns"
            )
        bad += [BadLine(b.line, b.reason, b.fields, object=uri) for b in read.bad]
        if kind == "parquet":
            last = read.rows
        else:
            last = int(frame.select(pl.col(LINE_COLUMN).max()).collect().item() or 0) if read.rows else 0
            last = max([last, *(b.line for b in read.bad)])
        frames.append(frame.select(
            *[pl.col(name) for name in header],
            (pl.col(LINE_COLUMN) + offset).alias(LINE_COLUMN),
            pl.lit(uri).alias(OBJECT_COLUMN),
            pl.col(LINE_COLUMN).alias(OBJECT_LINE_COLUMN),
        ))
        rows += read.rows
        offset += last
        padded = padded or read.padded
        reader = read.reader
        if bad_line_limit is not None and len(bad) >= bad_line_limit:
            break  # the caller stops at the first bad rows anyway
    if header is None:
        raise DataError(f"{source.uri}: every part is empty")
    if frames and rows:
        pl.concat(frames, how="vertical").sink_parquet(out)
    return CsvRead(header, rows, bad, reader, padded=padded)
