"""`conveyor init`: a project file inferred from a CSV, a PostgreSQL table or S3 objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli._app import _console


def init(
    file: Annotated[Optional[Path], typer.Argument(
        help="The CSV (or Parquet) file to start from; the same as --csv.", show_default=False)] = None,
    *,
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    csv: Annotated[Optional[Path], typer.Option("--csv", help="The CSV (or Parquet) file to start from.")] = None,
    postgres: Annotated[Optional[str], typer.Option(
        "--postgres", help="A PostgreSQL table to start from (`schema.table`); the DSN in the variable --dsn-env names.")] = None,
    query: Annotated[Optional[str], typer.Option(
        "--query", help="A read-only SQL query to start from, instead of --postgres TABLE.")] = None,
    dsn_env: Annotated[str, typer.Option(
        "--dsn-env", help="The environment variable holding the PostgreSQL connection string.")] = "CONVEYOR_PG_DSN",
    s3: Annotated[Optional[str], typer.Option(
        "--s3", help="S3 objects to start from: s3://bucket/key.csv or a prefix of parts s3://bucket/prefix/.")] = None,
    incremental: Annotated[Optional[str], typer.Option(
        "--incremental", help="PostgreSQL: a column that grows with new rows; later runs read only rows above it.")] = None,
    entity: Annotated[Optional[str], typer.Option("--entity", help="Entity key column; none: a row key is made.")] = None,
    timestamp: Annotated[
        Optional[list[str]],
        typer.Option(
            "--timestamp",
            help="Event time: one datetime column; a date then an hour or time column; or year, month, day (and "
                 "hour) columns (repeat the option, or dteday,hr).",
        ),
    ] = None,
    drop: Annotated[Optional[list[str]], typer.Option("--drop", help="A column to leave out (leak); repeatable.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Project name (default: from the file name).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the project file.")] = Path("conveyor.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing project file.")] = False,
    type_threshold: Annotated[
        Optional[float],
        typer.Option("--type-threshold", min=0.5, max=1.0,
                     help="Share of a column's values that must parse as a type for it to get that type (0.98)."),
    ] = None,
) -> None:
    """Infer a project file (conveyor.yaml) from a CSV, a PostgreSQL table or S3 objects: types, roles, task, event time."""
    from conveyor.runner import init_project

    if file is not None and csv is not None and file != csv:
        raise typer.BadParameter(f"two files given: {file} and --csv {csv}; give one", param_hint="FILE")
    csv = csv or file
    timestamps = [part.strip() for value in timestamp or [] for part in value.split(",") if part.strip()]
    notes: list[str] = []
    source = _init_source(csv=csv, postgres=postgres, query=query, dsn_env=dsn_env, s3=s3, incremental=incremental)
    config = init_project(
        csv, target=target, output=output, entity=entity, timestamps=timestamps, drop=drop, name=name, force=force,
        type_threshold=type_threshold, notes=notes, source=source,
    )
    schema = config.schema
    console = _console()
    from rich.table import Table

    table = Table(title=f"{output}", title_justify="left")
    for heading in ("column", "type", "role"):
        table.add_column(heading)
    for col_name, column in schema.columns.items():
        role = "target" if col_name == schema.target else column.role
        table.add_row(col_name, column.type if column.format is None else f"{column.type} ({column.format})", role)
    console.print(table)
    event = schema.event_time
    console.print(
        f"task [bold]{schema.task}[/], target [bold]{schema.target}[/], entity key [bold]{schema.entity.key}[/]"
        f"{' (generated)' if schema.entity.generated else ''}, event time [bold]{event.kind}[/] {event.columns or ''}"
    )
    from rich.console import Console

    said = Console(stderr=True, highlight=False)  # what init found goes to stderr, with the other diagnostics
    for note in notes:
        said.print(f"init: {note}", markup=False, soft_wrap=True)
    console.print(f"Wrote {output}. Review it (drop leaking columns), then: conveyor run -C {output.parent}")


def _init_source(
    *, csv: Path | None, postgres: str | None, query: str | None, dsn_env: str, s3: str | None, incremental: str | None
) -> Any:
    """The source `init` reads: None for --csv, else the `source:` section of a PostgreSQL or S3 source."""
    from pydantic import ValidationError

    from conveyor.core.config import SourceConfig
    from conveyor.core.errors import ConfigError

    given = [option for option, value in (("--csv", csv), ("--postgres", postgres), ("--query", query), ("--s3", s3))
             if value is not None]
    if len(given) != 1:
        raise ConfigError(f"init reads one source: give one of --csv, --postgres, --query, --s3 (got {', '.join(given) or 'none'})")
    if incremental is not None and (csv is not None or s3 is not None):
        raise ConfigError("--incremental is for a PostgreSQL source (--postgres or --query)")
    if csv is not None:
        return None
    fields: dict[str, Any] = {"kind": "s3", "uri": s3} if s3 is not None else {
        "kind": "postgres", "dsn_env": dsn_env, "table": postgres, "query": query}
    if incremental is not None:
        fields["incremental"] = {"column": incremental}
    try:
        return SourceConfig.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        hint = " (s3://bucket/key.csv or s3://bucket/prefix/)" if where == "uri" else ""
        raise ConfigError(f"init: source{'.' + where if where else ''}: {error['msg']}{hint}") from None
