"""`conveyor init`: a project file inferred from a CSV or Parquet file, for a person to read and edit.

Init tolerates a little dirt and says so: a column's type is what at least `type_threshold`
(98 %) of its non-missing values parse as; the rest will be quarantined by `prepare`, and
init lists them (count, three examples with their lines), the missing-value tokens it found,
the number notation, the encoding, unreadable rows, and why each column got its role.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.config import (
    CleaningConfig,
    Column,
    Config,
    Entity,
    Schema,
    SourceConfig,
)
from conveyor.core.errors import DataError
from conveyor.stages.sources._compressed import compression, decompressed, plain_name
from conveyor.stages.sources._csv import (
    LINE_COLUMN,
    describe_bad_lines,
    non_ascii_words,
    sniff_delimiter,
    sniff_encoding,
)
from conveyor.stages.sources._infer_roles import ENTITY_MAX_KEYS as ENTITY_MAX_KEYS
from conveyor.stages.sources._infer_roles import ENTITY_MAX_MISSING as ENTITY_MAX_MISSING
from conveyor.stages.sources._infer_roles import ENTITY_MIN_KEYS as ENTITY_MIN_KEYS
from conveyor.stages.sources._infer_roles import ENTITY_MIN_ROWS_PER_KEY as ENTITY_MIN_ROWS_PER_KEY
from conveyor.stages.sources._infer_roles import EntityProposal as EntityProposal
from conveyor.stages.sources._infer_roles import _event_time, _near_event_time, _role, _task, propose_entities
from conveyor.stages.sources._infer_types import (
    _MISSING_MARKS,
    _choose,
    _missing_tokens,
    _nan_tokens,
    _notation,
    _nulls,
)
from conveyor.stages.sources._infer_types import infer_type as infer_type
from conveyor.stages.sources._leakage import check_and_find_leaks
from conveyor.stages.sources._read import read_source
from conveyor.stages.sources._sentinels import find_sentinel

if TYPE_CHECKING:
    import polars as pl

__all__ = ["infer_config"]

_GENERATED_KEY = "row_id"
TYPE_THRESHOLD = 0.98
"""A column's type is the narrowest type at least this share of its non-missing values parse as."""
BAD_LINE_SHARE = 0.02
"""Up to this share of unreadable rows, init sets `source.on_bad_lines: quarantine`; above, it stops."""
SAMPLE_ROWS = 1_000_000
"""Above this many rows, init infers from a seeded sample of this many, in file order (a 50M-row, 5 GB
CSV read whole took 23 GB); ingest and prepare still read every row, and quarantine what the sample missed."""
EVENT_TIME_THRESHOLD = 0.9
"""A date or datetime column that no other column beats, with at least this share of its values parsing
(below `type_threshold`), is the event time all the same: prepare quarantines the rest, and init says so."""


def _project_name(path: Path) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_") or "project"
    return slug if slug[0].isalpha() else f"p-{slug}"[:63]


def _source_kind(path: Path) -> str:
    with path.open("rb") as handle:
        magic = handle.read(4)
    return "parquet" if magic == b"PAR1" or path.suffix.lower() in (".parquet", ".pq") else "csv"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def infer_config(
    csv_path: Path,
    *,
    target: str,
    entity: str | None = None,
    timestamps: list[str] | None = None,
    drop: list[str] | None = None,
    name: str | None = None,
    source_path: str | None = None,
    type_threshold: float = TYPE_THRESHOLD,
    notes: list[str] | None = None,
    entities: list[str] | None = None,
    source: SourceConfig | None = None,
    sample_rows: int | None = None,
) -> Config:
    """Infer column types, roles, the task, the event time and how to read the file.

    `source`: the project's source when `csv_path` is a sample of it (a PostgreSQL table or S3
    objects read the way ingest reads them, `infer_remote_config`), written as given.

    A file of more than `sample_rows` rows (`SAMPLE_ROWS`) is read whole once (the unreadable
    rows and the count), and inferred from a seeded sample of that many rows in file order.

    Columns that look like entities (`propose_entities`) are appended to `entities` and noted;
    they are not turned on: `features.entities` stays empty until a person chooses them (and
    their aggregates).

    What init found and decided (values that will be quarantined, missing tokens, number
    notation, encoding, bad rows, the reason for each role) is appended to `notes`, one
    line each; without a list they are printed to stderr.
    """
    import polars as pl

    said: list[str] = [] if notes is None else notes
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found")
    packed = compression(csv_path)
    if packed is not None and source is None:  # a .csv.gz: inferred from its text, the source stays the file
        with tempfile.TemporaryDirectory(prefix="conveyor-init-") as unpacked:
            plain = decompressed(csv_path, Path(unpacked))
            said.append(f"source: compressed with {packed}; read decompressed (ingest does the same)")
            try:
                config = infer_config(
                    plain, target=target, entity=entity, timestamps=timestamps, drop=drop,
                    name=name or _project_name(Path(plain_name(csv_path))), source_path=source_path or str(csv_path),
                    type_threshold=type_threshold, notes=said, entities=entities,
                )
            except DataError as exc:
                raise DataError(str(exc).replace(str(plain), f"{csv_path} (decompressed)")) from None
        if notes is None:
            for line in said:
                print(f"init: {line}", file=sys.stderr)
        return config
    kind = _source_kind(csv_path)
    encoding, delimiter = "utf-8", ","
    if kind == "csv":
        encoding = sniff_encoding(csv_path)
        delimiter = sniff_delimiter(csv_path, encoding)
        if encoding != "utf-8":
            shown = ", ".join(non_ascii_words(csv_path, encoding))
            said.append(f"source: encoding {encoding} (detected over the whole file)"
                        + (f"; its letters read as: {shown} (if these look wrong, set source.encoding)" if shown else ""))
    probe = SourceConfig(kind=kind, path=str(csv_path), delimiter=delimiter, encoding=encoding)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="conveyor-init-") as work:
        read = read_source(probe, csv_path, Path(work) / "probe.parquet", workdir=Path(work))
        raw, total = _probe(Path(work) / "probe.parquet", sample_rows or SAMPLE_ROWS)
    if raw.height < total:
        said.append(f"source: {total:,} rows; inferred from a seeded sample of {raw.height:,} of them, in file order "
                    "(the counts below are the sample's; ingest and prepare read every row and quarantine, with its "
                    "reason, a value the sample did not show)")
    lines = raw[LINE_COLUMN]
    raw = raw.drop(LINE_COLUMN)
    on_bad_lines = "error"
    if read.bad:
        share = len(read.bad) / max(len(read.bad) + read.rows, 1)
        if share > BAD_LINE_SHARE:
            raise DataError(describe_bad_lines(csv_path, read.bad).replace(
                "Fix the file, or set source.on_bad_lines: quarantine in conveyor.yaml",
                f"that is {share:.0%} of the rows: is the delimiter or the encoding wrong? Fix the file"))
        on_bad_lines = "quarantine"
        shown = ", ".join(f"line {b.line} ({b.reason})" for b in read.bad[:3])
        said.append(f"source: {len(read.bad)} unreadable row(s) will be quarantined at ingest "
                    f"(source.on_bad_lines: quarantine), e.g. {shown}")
    rows = raw.height
    if target not in raw.columns:
        raise DataError(
            f"{csv_path}, line 1: no column named {target!r} for --target; "
            f"the header has: {', '.join(raw.columns)}"
        )
    for option, column in [("--entity", entity), *[("--drop", d) for d in drop or []]]:
        if column is not None and column not in raw.columns:
            raise DataError(f"{option} {column}: no such column in {csv_path}; the header has: "
                            f"{', '.join(raw.columns)}")
    # missing tokens: the punctuation ones everywhere, words like "unknown" where they are not a category
    tokens: dict[str, dict[str, int]] = {}
    for column in raw.columns:
        found = _missing_tokens(raw, column, "number")
        if found:
            tokens[column] = found
    frame = raw.select(_nulls(raw[c], list(tokens.get(c, {}))) for c in raw.columns)
    decimal, thousands = _notation(frame, delimiter) if kind == "csv" else (".", None)
    if decimal != "." or thousands is not None:
        said.append(f"source: numbers are written with decimal {decimal!r}"
                    + (f" and thousands separator {thousands!r}" if thousands else ""))
    types = {c: _choose(frame[c], decimal, thousands, type_threshold) for c in frame.columns}
    for column, found in list(tokens.items()):
        if types[column].kind == "string":  # in a text column, "unknown" is a level, not a gap
            kept = {t: n for t, n in found.items() if t in _MISSING_MARKS}
            if kept != found:
                frame = frame.with_columns(_nulls(raw[column], list(kept)))
                types[column] = _choose(frame[column], decimal, thousands, type_threshold)
            if kept:
                tokens[column] = kept
            else:
                del tokens[column]
    for column, typed in types.items():  # NaN in a number column is non-finite (quarantined) unless listed
        nan = _nan_tokens(raw, column) if typed.kind in ("integer", "float") else {}
        if nan:
            tokens[column] = {**tokens.get(column, {}), **nan}
            said.append(f"{column}: uses {' and '.join(map(repr, nan))} for a missing number (as pandas writes one); "
                        "listed in cleaning.missing_tokens so those rows are kept with the value missing (without it, "
                        "NaN is a non-finite number: cleaning.non_finite quarantines its row)")
    for column, found in tokens.items():
        listed = ", ".join(f"{t!r} ({n})" for t, n in found.items())
        said.append(f"{column}: {listed} read as missing (cleaning.missing_tokens)")
    codes: dict[str, list[str | int | float]] = {}
    for column, typed in types.items():  # -200, -999, 9999: one number standing for "missing"
        code = find_sentinel(typed.value) if typed.kind in ("integer", "float") else None
        if code is not None:
            codes[column] = [code.value]
            said.append(code.note(column, rows))
    target_values = types[target].value
    unlabeled = target_values.null_count() + sum(int((target_values == c).sum()) for c in codes.get(target, []))
    if unlabeled:
        said.append(f"{target}: {unlabeled} of {rows}{' sampled' if rows < total else ''} rows have no target value; prepare will quarantine them (a "
                    "model cannot learn from a row without its answer)")
    near = None
    if not timestamps and not any(t.kind in ("date", "datetime") for t in types.values()):
        near = _near_event_time(frame, types, decimal, thousands)
    if near is not None:  # a date column that a few bad values kept under type_threshold
        column, typed = near
        failed = int(typed.bad.sum())
        examples = ", ".join(f"{_shown(v)} (line {n})" for v, n in
                             zip(frame[column].filter(typed.bad)[:3], lines.filter(typed.bad)[:3], strict=True))
        head = (f"event time: {column} looked like the event time, but {failed} of its values ({1 - typed.share:.1%}) "
                f"do not parse as a {typed.kind} ({typed.format or 'ISO 8601'}), e.g. {examples}")
        if typed.share >= EVENT_TIME_THRESHOLD:
            types[column] = typed
            said.append(f"{head}; chosen as the event time all the same: prepare quarantines those rows (fix the "
                        "values to keep them, or set schema.event_time.kind: ingest_time)")
        else:
            said.append(f"{head}; too many to quarantine, so the event time is the time of the ingest (fix the "
                        "values and run init again, or set schema.event_time in conveyor.yaml)")
    for column, typed in types.items():
        count = int(typed.bad.sum())
        if count:
            bad_values = frame[column].filter(typed.bad)
            bad_lines = lines.filter(typed.bad)
            examples = ", ".join(f"{_shown(v)} (line {n})" for v, n in zip(bad_values[:3], bad_lines[:3], strict=True))
            said.append(f"{column}: {typed.kind} for {typed.share:.1%} of its values; {count} value(s) that are not "
                        f"will be quarantined by prepare, e.g. {examples}")
    event_time, event_why = _event_time(types, frame, list(timestamps or []))
    columns: dict[str, Column] = {}
    why_role: dict[str, str] = {}
    for column in frame.columns:
        typed = types[column]
        if column == target:
            task = _task(typed.kind, typed.value)
            role, why = ("numeric" if task == "regression" else "categorical"), f"the target ({task})"
        elif column == entity:
            role, why = "id", "given by --entity"
        elif event_time.kind == "date_hour" and column == event_time.columns[1]:
            role, why = "numeric", "the hour of the event time, also a feature"
        else:
            role, why = _role(column, typed, rows)
            if role == "event_time" and column not in event_time.columns:
                role, why = "ignore", f"a {typed.kind} column, not the event time"
            elif role == "event_time":
                why = f"the event time: {event_why}"
        columns[column] = Column(type=typed.kind, role=role, format=typed.format)  # type: ignore[arg-type]
        if typed.ambiguous is not None:
            said.append(f"{column}: every date fits both {typed.format} and {typed.ambiguous} (no day above 12); "
                        f"read as {typed.format}: set schema.columns.{column}.format to {typed.ambiguous!r} "
                        f"if the {'day' if typed.ambiguous.index('%d') < typed.ambiguous.index('%m') else 'month'} "
                        "comes first")
        why_role[column] = why
    said.extend(f"{column}: {columns[column].type}, {columns[column].role}: {why}" for column, why in why_role.items())
    if event_time.kind == "ingest_time":
        said.append(f"event time: {event_why}")
    if entity is not None:
        key = Entity(key=entity)
    else:
        generated = _GENERATED_KEY if _GENERATED_KEY not in columns else "conveyor_row_id"
        key = Entity(key=generated, generated=True)
    task = _task(types[target].kind, types[target].value)
    inputs = [c for c, col in columns.items() if col.role in ("numeric", "categorical") and c not in (target, entity)]
    leaks = check_and_find_leaks(frame, target, task, [c for c in inputs if c not in (drop or [])])
    said.extend(f"{leak.column}: reproduces the target ({leak.evidence}); proposed for schema.drop" for leak in leaks)
    keyed = [c for c, col in columns.items() if col.role in ("numeric", "categorical", "id", "ignore")
             and c not in (target, entity, *event_time.columns, *(drop or []), *(leak.column for leak in leaks))]
    has_time = event_time.kind != "ingest_time"
    parsed = pl.DataFrame({c: types[c].value for c in keyed}) if keyed else pl.DataFrame()
    for proposal in propose_entities(parsed, {c: types[c].kind for c in keyed}, keyed, has_time):
        said.append(proposal.note(" + ".join(event_time.columns)))
        if entities is not None:
            entities.append(proposal.column)
    schema = Schema(
        target=target,
        task=task,  # type: ignore[arg-type]
        entity=key,
        event_time=event_time,
        columns=columns,
        drop=[*(drop or []), *(leak.column for leak in leaks)],
    )
    source = source or SourceConfig(
        kind=kind,  # type: ignore[arg-type]
        path=source_path or str(csv_path),
        delimiter=delimiter,
        encoding=encoding,
        decimal=decimal,  # type: ignore[arg-type]
        thousands=thousands,  # type: ignore[arg-type]
        on_bad_lines=on_bad_lines,  # type: ignore[arg-type]
    )
    cleaning = CleaningConfig(missing_tokens={c: list(found) for c, found in tokens.items()}, null_values=codes)
    config = Config(name=name or _project_name(csv_path), source=source, schema_=schema, cleaning=cleaning)
    if notes is None:
        for line in said:
            print(f"init: {line}", file=sys.stderr)
    return config


def _probe(path: Path, limit: int) -> tuple[pl.DataFrame, int]:
    """The probe's rows (all, or a seeded sample of `limit` in file order, read in one streaming pass) and its count."""
    import polars as pl

    total = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    if total <= limit:
        return pl.read_parquet(path), total
    index = "__conveyor_probe_row"
    picked = pl.int_range(0, total, eager=True, dtype=pl.get_index_type()).sample(limit, seed=0)
    sample = (pl.scan_parquet(path).with_row_index(index).filter(pl.col(index).is_in(picked.implode()))
              .drop(index).collect(engine="streaming"))
    return sample, total
