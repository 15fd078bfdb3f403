"""The `conveyor` command. Thin: parses options, calls the runner, prints tables.

Nothing heavy is imported at start-up (no Feast, MLflow, pandas or scikit-learn), so
`conveyor --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor import __version__
from conveyor.core.errors import ConveyorError

app = typer.Typer(
    name="conveyor",
    help="Conveyor: a raw CSV to a monitored prediction API, on Feast, MLflow and FastAPI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-C", help="Folder holding conveyor.yaml.", show_default=False)
]
NoSearchOpt = Annotated[
    bool, typer.Option("--no-search", help="Skip the hyperparameter search (as training.search.trials: 0).")
]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="Exit (code 75) instead of waiting when another command holds the project lock.")
]


def _console() -> Any:
    from conveyor.cli._output import FittingConsole

    return FittingConsole(highlight=False)  # tables fit the terminal, or keep their rows on one line


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Run `conveyor init`, then `conveyor run`, `conveyor serve`, `conveyor monitor`."""


@app.command()
def init(
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
            help="Event time: one datetime column, or a date then an hour column (repeat the option, or dteday,hr).",
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
        table.add_row(col_name, column.type, role)
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


def _without_search(config: Any) -> Any:
    """`--no-search`: the same project with `training.search.trials: 0` (its own cache key)."""
    training = config.training
    search = training.search.model_copy(update={"trials": 0})
    return config.model_copy(update={"training": training.model_copy(update={"search": search})})


def _locked(project: Path, command: str, no_wait: bool) -> Any:
    """The project lock for a command that writes project state: a second one waits, saying who
    holds it (one line on stderr), or with --no-wait exits 75 with that line."""
    from conveyor.runner import load_project, project_lock

    config, workspace = load_project(project)
    return project_lock(config, workspace, command, wait=not no_wait,
                        on_wait=lambda line: typer.echo(line, err=True))


def _run(
    project: Path, *, only: str | None = None, start: str | None = None, stop: str | None = None,
    force: bool = False, no_search: bool = False, no_wait: bool = False,
) -> None:
    with _locked(project, f"conveyor {only or 'run'}", no_wait):
        _run_locked(project, only=only, start=start, stop=stop, force=force, no_search=no_search)


def _run_locked(
    project: Path, *, only: str | None, start: str | None, stop: str | None, force: bool, no_search: bool,
) -> None:
    from contextlib import nullcontext

    from rich.table import Table

    from conveyor.cli._output import progress_line
    from conveyor.core.progress import listening
    from conveyor.runner import Event, load_project, run_pipeline, stages_of

    config, workspace = load_project(project)  # read again under the lock: the file may have changed meanwhile
    if no_search:
        config = _without_search(config)
    console = _console()
    rows: list[tuple[str, str, str, str]] = []
    described = {stage.name: stage.describe for stage in stages_of(config)}
    status: Any = None

    def on_progress(what: str, done: int, total: int | None) -> None:
        if status is not None:  # a bar under the running stage's spinner (search trials, the online-store write)
            status.update(progress_line(what, done, total))

    def on_event(event: Event) -> None:
        nonlocal status
        if event.status == "running":
            status = console.status(f"[bold]{event.stage}[/]: {described[event.stage]} ...")
            status.start()
            return
        if status is not None:
            status.stop()
            status = None
        state = event.status if not event.why or event.why == "forced" else f"{event.status} ({event.why})"
        summary = event.artifact.result.summary() if event.artifact is not None else ""
        rows.append((event.stage, state, f"{event.seconds:.1f}s" if event.status == "ran" else "-", summary))

    try:
        with listening(on_progress) if console.is_terminal else nullcontext():
            run_pipeline(config, workspace, only=only, start=start, stop=stop, force=force, on_event=on_event)
    finally:
        if status is not None:
            status.stop()
        if rows:
            table = Table(title=f"{config.name}: {workspace.root}", title_justify="left")
            for column in ("stage", "status", "time", "result"):
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            console.print(table)


@app.command()
def run(
    project: ProjectOpt = Path("."),
    from_: Annotated[Optional[str], typer.Option("--from", help="Re-run from this stage on.")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Stop after this stage (e.g. --to prepare).")] = None,
    no_search: NoSearchOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Run ingest -> prepare -> eda -> features -> dataset -> train -> promote, skipping unchanged stages."""
    _run(project, start=from_, stop=to, no_search=no_search, no_wait=no_wait)


def _stage_command(stage: str, help_text: str) -> None:
    def command(
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Run even if its inputs are unchanged.")] = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        _run(project, only=stage, force=force, no_wait=no_wait)

    def train_command(
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Run even if its inputs are unchanged.")] = False,
        no_wait: NoWaitOpt = False,
        no_search: NoSearchOpt = False,
    ) -> None:
        _run(project, only=stage, force=force, no_search=no_search, no_wait=no_wait)

    if stage == "train":
        command = train_command

    command.__doc__ = help_text
    if stage == "features":
        _features_group(command, help_text)
        return
    app.command(name=stage)(command)


def _features_group(run_stage: Any, help_text: str) -> None:
    """`conveyor features` runs the stage; `conveyor features list` and `show VIEW` read the views."""
    group = typer.Typer(help=help_text, no_args_is_help=False, invoke_without_command=True, rich_markup_mode=None)

    @group.callback()
    def features(
        ctx: typer.Context,
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Run even if its inputs are unchanged.")] = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        if ctx.invoked_subcommand is None:
            run_stage(project, force, no_wait)

    features.__doc__ = f"{help_text} `conveyor features list` / `show VIEW`: the feature views."
    group.command("list")(_list_views)
    group.command("show")(feature_views_show)
    app.add_typer(group, name="features")


def _register_stage_commands() -> None:
    from conveyor.runner import STAGES

    for stage in STAGES:
        _stage_command(stage.name, stage.help)


feature_views_app = typer.Typer(
    help="The Feast feature views (also `conveyor features list` / `show VIEW`).", no_args_is_help=False,
    invoke_without_command=True, rich_markup_mode=None,
)
app.add_typer(feature_views_app, name="feature-views")


def _views(project: Path) -> tuple[Any, list[Any]]:
    from conveyor.runner import load_project
    from conveyor.stages.features import feature_views

    config, workspace = load_project(project)
    return config, feature_views(config, workspace)


def _ttl(seconds: int) -> str:
    return "never expires" if seconds == 0 else f"{seconds / 3600:g} h"


@feature_views_app.callback()
def feature_views_list(ctx: typer.Context, project: ProjectOpt = Path(".")) -> None:
    """List the feature views (`conveyor feature-views show VIEW` for one)."""
    if ctx.invoked_subcommand is None:
        _list_views(project)


def _list_views(project: ProjectOpt = Path(".")) -> None:
    """List the feature views: entity, fields, source rows, TTL, online freshness, the models reading each."""
    config, views = _views(project)
    noun = "feature view" if len(views) == 1 else "feature views"
    typer.echo(f"{config.name}: {len(views)} {noun} (`conveyor features show VIEW` for the fields)")
    width = max((len(v.name) for v in views), default=0)
    for view in views:
        age = "" if view.age_seconds is None else f" ({view.age_seconds / 86400:.1f} days ago)"
        typer.echo(
            f"  {view.name:<{width}}  entity {view.entity}; {len(view.fields)} fields; "
            f"source {view.source} ({view.source_rows} rows); ttl {_ttl(view.ttl_seconds)}; "
            f"online as of {view.online_as_of or '-'}{age}; models {', '.join(view.models) or '-'}"
        )


@feature_views_app.command("show")
def feature_views_show(
    view: Annotated[str, typer.Argument(help="A view name from `conveyor features list`.")],
    project: ProjectOpt = Path("."),
) -> None:
    """One feature view: its entity, fields (with their Feast names and types), source and freshness."""
    from rich.table import Table

    config, views = _views(project)
    found = [v for v in views if v.name == view]
    if not found:
        raise ConveyorError(f"no feature view {view!r}; the views are: {', '.join(v.name for v in views)}")
    info = found[0]
    console = _console()
    console.print(f"[bold]{info.name}[/]  entity [bold]{info.entity}[/] (join key {info.join_key})")
    console.print(f"source feature_repo/{info.source} ({info.source_rows} rows); ttl {_ttl(info.ttl_seconds)}; "
                  f"online as of {info.online_as_of or '-'}"
                  + (f" ({info.age_seconds / 86400:.1f} days ago)" if info.age_seconds is not None else ""))
    console.print(f"read by: {', '.join(info.models) or 'no model'}")
    table = Table(title_justify="left")
    for column in ("feature", "Feast field", "type"):
        table.add_column(column)
    for name, feast_name, dtype in info.fields:
        table.add_row(name, feast_name, dtype)
    console.print(table)


_register_stage_commands()


ForOpt = Annotated[Optional[str], typer.Option(
    "--for", metavar="MODEL", help="One model of `models:` (a project with several models).")]


@app.command()
def lineage(
    request_id: Annotated[Optional[str], typer.Argument(help="A request id from the prediction log.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="A registered model version instead.")] = None,
    for_model: ForOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Walk from a served prediction (or a model version) back to the source file's bytes."""
    from rich.tree import Tree

    from conveyor.runner import lineage_of_model, lineage_of_prediction, load_project, model_configs

    if (request_id is None) == (model is None):
        raise typer.BadParameter("give a REQUEST_ID or --model VERSION (one of them)")
    config, workspace = load_project(project)
    if request_id is not None:  # every model's log is searched: a request id is unique
        model_configs(config, for_model)  # a wrong --for is still an error
        steps = lineage_of_prediction(config, workspace, request_id)
    else:
        steps = lineage_of_model(model_configs(config, for_model, one=True)[0], workspace, model or "")
    root = Tree(f"[bold]{config.name}[/]: {workspace.root}")
    branches: dict[int, Any] = {-1: root}
    for step in steps:
        label = f"[bold]{step.kind}[/] {step.digest[:16]}  {step.path}".rstrip()
        node = branches[step.depth - 1].add(label + (f"\n[dim]{step.summary}[/]" if step.summary else ""))
        branches[step.depth] = node
    _console().print(root)


models_app = typer.Typer(
    help="Registered model versions: aliases, metrics, lineage, and the history of @champion.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, project: ProjectOpt = Path("."), for_model: ForOpt = None) -> None:
    """A table of the registered versions, then every move of @champion (who, when, why); each model's in turn."""
    if ctx.invoked_subcommand is not None:
        return
    from conveyor.runner import load_project, model_configs

    config, workspace = load_project(project)
    for own in model_configs(config, for_model):
        _versions_table(own, workspace)
        _loop_table(own, workspace)


def _versions_table(config: Any, workspace: Any) -> None:
    from rich.table import Table

    from conveyor.stages.training import champion_history, list_versions

    versions = list_versions(config, workspace)
    console = _console()
    if not versions:
        console.print(f"no registered version of {config.name!r} yet: run `conveyor run`")
        return
    table = Table(title=f"{config.name}: registered versions", title_justify="left")
    for column in ("version", "aliases", "model", "test metrics", "training set", "created", "run"):
        table.add_column(column)
    for info in versions:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items()))
        table.add_row(info.version, " ".join(f"@{a}" for a in info.aliases) or "-", info.model, shown,
                      info.training_set[:16], info.created, info.run_id[:12])
    console.print(table)
    history = champion_history(config, workspace)
    if history:
        moves = Table(title="@champion history", title_justify="left")
        for column in ("when (UTC)", "by", "move", "metric", "why"):
            moves.add_column(column)
        for change in history:
            before = "-" if change.previous_score is None else f"{change.previous_score:.4f}"
            moves.add_row(change.at, change.by, f"{'v' + change.old if change.old else 'none'} -> v{change.new}",
                          f"{change.metric} {before} -> {change.score:.4f}", change.why)
        console.print(moves)


def _loop_table(config: Any, workspace: Any) -> None:
    """What `monitor --act` did: why, on what rows, what it compared, what it decided."""
    from rich.markup import escape
    from rich.table import Table

    from conveyor.runner import loop_records

    records = loop_records(config, workspace)
    if not records:
        return
    table = Table(title="monitor --act", title_justify="left")
    for column in ("when (UTC)", "why", "action", "on what", "compared", "decision", "record"):
        table.add_column(column)
    for record in records:
        retrain, decision = record.get("retrain") or {}, record.get("decision") or {}
        on_what = ("-" if not retrain else retrain.get("skipped") or
                   f"{retrain['snapshot']}: source + {retrain['appended_rows']} labeled rows")
        compared = "-"
        if decision:
            champion = decision.get("champion_score")
            compared = (f"{decision['metric']} on {decision['n_fresh']} fresh rows: challenger "
                        f"{decision['challenger_score']:.4f} vs v{decision['champion_version']} "
                        + ("-" if champion is None else f"{champion:.4f}"))
        done = [] if not decision else [f"promoted v{decision['champion']}" if decision["promoted"]
                                        else f"kept v{decision['champion']}"]
        alert = record.get("alert")
        if alert:
            done.append("alert " + ("sent" if alert["delivered"] else "failed"))
        verdict = "; ".join(done) or "-"
        table.add_row(record["at"], escape(record["why"]), record["action"], escape(on_what), compared, verdict,
                      record["_path"])
    _console().print(table)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="A registered version number.")],
    project: ProjectOpt = Path("."),
    for_model: ForOpt = None,
) -> None:
    """Exactly what made one version: training-set digest, Feast feature service, config digest, run."""
    from conveyor.runner import load_project, model_configs
    from conveyor.stages.training import describe_version

    config, workspace = load_project(project)
    config = model_configs(config, for_model, one=True)[0]
    info = describe_version(config, workspace, version.lstrip("v"))
    console = _console()
    lines = [
        ("model", f"{config.name} v{info.version} ({info.model})"),
        ("aliases", " ".join(f"@{a}" for a in info.aliases) or "-"),
        ("created", info.created),
        ("run", info.run_id),
        ("training set", info.training_set or "(not recorded)"),
        ("rows", info.trained_on or "(not recorded)"),
        ("feature service", info.feature_service or "(not recorded)"),
        ("config digest", info.config or "(not recorded)"),
        ("test metrics", ", ".join(f"{k}={v:.4f}" for k, v in sorted(info.metrics.items()))),
    ]
    for key in ("conveyor.promoted_at", "conveyor.promoted_by", "conveyor.promotion_reason", "conveyor.retrained"):
        if key in info.tags:
            lines.append((key.split(".", 1)[1].replace("_", " "), info.tags[key]))
    for key, value in lines:
        console.print(f"[bold]{key:>16}[/]  {value}")


@app.command()
def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[Optional[str], typer.Option(
        envvar="CONVEYOR_HOST", help="Bind address (default: serving.host).")] = None,
    port: Annotated[Optional[int], typer.Option(envvar="CONVEYOR_PORT", help="Port (default: serving.port).")] = None,
    workers: Annotated[Optional[str], typer.Option(
        envvar="CONVEYOR_WORKERS",
        help="uvicorn worker processes, each with its own model: N or 'auto' (usable cores; default: serving.workers).",
    )] = None,
) -> None:
    """Serve models:/<name>@champion with FastAPI: /predict, /health, /metrics, /admin/reload."""
    from conveyor.runner import load_project, serve_project

    config, workspace = load_project(project)
    serve_project(config, workspace, host, port, _workers(workers))


@app.command()
def doctor(project: ProjectOpt = Path(".")) -> None:
    """Check every service the project uses (source, MLflow, registry, online, offline, lock): one line each."""
    from conveyor.runner import load_project
    from conveyor.runner._doctor import check_services

    config, workspace = load_project(project)
    checks = check_services(config, workspace)
    for check in checks:
        typer.echo(f"{check.status:<8} {check.role:<15} {check.detail}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@app.command()
def ui(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Bind address (loopback unless told otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8765,
    serving_url: Annotated[Optional[str], typer.Option(
        "--serving-url", help="The running service whose /metrics to show (default: serving.host:serving.port).")] = None,
    mlflow_url: Annotated[Optional[str], typer.Option(
        "--mlflow-url", envvar="CONVEYOR_MLFLOW_UI", help="MLflow's UI, for the run links (default: http://127.0.0.1:5000).",
    )] = None,
) -> None:
    """The project page (read-only): pipeline, data quality, features, models, service, drift, lineage."""
    from conveyor.runner._ui import DEFAULT_MLFLOW_URL, serve_ui

    serve_ui(project, host=host, port=port, serving_url=serving_url, mlflow_url=mlflow_url or DEFAULT_MLFLOW_URL)


def _workers(value: str | None) -> int | None:
    if value is None:
        return None
    if value == "auto":
        import os

        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"--workers takes a number >= 1 or 'auto', not {value!r}")
    return int(value)


@app.command()
def build(
    project: ProjectOpt = Path("."),
    tag: Annotated[Optional[str], typer.Option("--tag", "-t", help="Image tag (default: conveyor-<name>:latest).")] = None,
    bake: Annotated[bool, typer.Option(
        "--bake/--no-bake", help="Copy the champion, the registry and the online store into the image.")] = True,
    docker: Annotated[bool, typer.Option(
        "--docker/--no-docker", help="Run docker build (--no-docker: only write the Dockerfile and context).")] = True,
    wheelhouse: Annotated[Optional[Path], typer.Option(
        help="A folder of wheels (conveyor and its dependencies) instead of pip wheel + pip download.")] = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """Write a Dockerfile and .dockerignore and build an image serving the champion (hermetic: no network inside)."""
    from conveyor.runner import load_project
    from conveyor.runner._build import build_image

    with _locked(project, "conveyor build", no_wait):
        config, workspace = load_project(project)
        result = build_image(config, workspace, tag=tag, bake=bake, docker=docker, wheelhouse=wheelhouse)
    console = _console()
    console.print(f"wrote {result.dockerfile} and .dockerignore ({result.wheels} wheels in .conveyor/image/wheels)")
    if result.built:
        mount = "" if result.baked else ' -v "$PWD:$PWD" -w "$PWD"'
        from conveyor.runner._build import serving_env_names

        mount += "".join(f" -e {name}" for name in serving_env_names(config))  # the shared stores, by name
        console.print(f"built [bold]{result.tag}[/]; run it with:\n"
                      f"  docker run --rm --init -p {config.serving.port}:{config.serving.port} "
                      f"-e CONVEYOR_HOST=0.0.0.0{mount} {result.tag}")


@app.command()
def monitor(
    project: ProjectOpt = Path("."),
    window: Annotated[Optional[int], typer.Option(help="Only the last N logged predictions.")] = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 3 when drift is found.")] = False,
    fail_on_degraded: Annotated[bool, typer.Option(
        "--fail-on-degraded", help="Exit 4 when labeled predictions score worse than the test split allows.")] = False,
    for_model: ForOpt = None,
    act: Annotated[bool, typer.Option("--act", help=(
        "Carry out monitoring.on_drift / on_degraded: alert (monitoring.webhook) or retrain on the labeled "
        "traffic and promote the challenger only if it beats the champion on fresh labeled rows."))] = False,
    no_search: NoSearchOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Compare served traffic with the training reference; write JSON and HTML reports (each model's in turn)."""
    from rich.markup import escape
    from rich.table import Table

    from conveyor.cli._output import showing_progress
    from conveyor.runner import load_project, model_configs, monitor_project

    config, workspace = load_project(project)
    drifted = degraded = False
    for own in model_configs(config, for_model):
        console = _console()
        with showing_progress(console, f"{own.name}: reading the prediction log"):  # a bar on a terminal only
            check = monitor_project(own, workspace, window).result
        table = Table(title=f"{own.name}: drift of {check.n_current} predictions vs {check.n_reference} training rows",
                      title_justify="left")
        for column in ("feature", "test", "p-value", "PSI", "effect", "missing ref -> cur", "drifted", "rules fired"):
            table.add_column(column)
        for row in check.rows:
            table.add_row(row.name, row.test, _fmt(row.p_value), _fmt(row.psi), _fmt(row.effect), _missing(row),
                          "[red]yes[/]" if row.drifted else "no", escape("; ".join(row.rules)))
        console.print(table)
        colour = "red" if check.verdict == "drift" else "green"
        console.print(f"verdict: [bold {colour}]{check.verdict}[/] ({own.name} v{check.model_version}); "
                      f"report {check.html_report}")
        for reason in check.reasons:
            console.print(f"  {escape(reason)}")
        if check.performance is not None:
            style = "red" if check.performance.degraded else "green"
            console.print(f"[{style}]{check.performance.summary()}[/]")
            degraded = degraded or bool(check.performance.degraded)
            _print_windows(console, check.performance)
        for feature, kinds in check.unknown_values.items():
            counts = ", ".join(f"{n} {why}" for why, n in kinds.items())
            console.print(f"[yellow]{escape(feature)}: {escape(counts)} (answered as missing)[/]")
        if check.unreadable:
            more = f" and {check.unreadable - len(check.unreadable_at)} more" if check.unreadable > len(
                check.unreadable_at) else ""
            console.print(f"[yellow]{check.unreadable} unreadable lines in the prediction log were left out: "
                          f"{escape(', '.join(check.unreadable_at))}{more}[/]")
        drifted = drifted or check.verdict == "drift"
        if act:
            _act(project, own, check, no_search=no_search, no_wait=no_wait)
    if fail_on_drift and drifted:
        raise typer.Exit(3)
    if fail_on_degraded and degraded:
        raise typer.Exit(4)


def _print_windows(console: Any, performance: Any) -> None:
    """The primary metric per time window, beside the test score: one compact table."""
    from rich.table import Table

    if not performance.windows:
        return
    test = "" if performance.test_value is None else f" (test {performance.test_value:.4f})"
    table = Table(title=f"{performance.metric} per {performance.window}{test}", title_justify="left", box=None)
    for column in ("window (UTC)", "labeled", performance.metric):
        table.add_column(column)
    for window in performance.windows:
        table.add_row(window.start[:16].replace("T", " "), str(window.n_labeled),
                      "-" if window.value is None else f"{window.value:.4f}")
    console.print(table)


def _act(project: Path, own: Any, check: Any, *, no_search: bool, no_wait: bool) -> None:
    """`monitor --act`: the project's policy on one model's findings, under the project lock."""
    from conveyor.runner import act_on, load_project

    with _locked(project, "conveyor monitor --act", no_wait):
        _, workspace = load_project(project)
        outcome = act_on(own, workspace, check, search=not no_search)
    for line in outcome.lines:  # plain lines: a path or a reason is long, and logs should not wrap
        typer.echo(line)


def _missing(row: Any) -> str:
    """A drift row's shares of nulls, reference -> current."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    return f"{pct(row.reference_missing)} -> {pct(row.current_missing)}"


@app.command()
def alerts(
    output: Annotated[Path, typer.Option("-o", "--output", help="The folder to write the two files to.")] = Path("alerts"),
    project: ProjectOpt = Path("."),
) -> None:
    """Write Prometheus alerting rules (prometheus-rules.yml) and a Grafana dashboard (grafana-dashboard.json)."""
    from conveyor.runner import load_project
    from conveyor.stages.monitoring import write_alerts

    config, _ = load_project(project)
    rules, board = write_alerts(config, output)
    typer.echo(f"wrote {rules} (load it with rule_files: in prometheus.yml) and {board} (import it in Grafana)")


schedule_app = typer.Typer(
    help="Run the stages and `monitor --act` on a scheduler (cron with `conveyor monitor --act` needs none).",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("airflow")
def schedule_airflow(
    output: Annotated[Path, typer.Option("-o", "--output", help="The DAGs folder to write to.")] = Path("dags"),
    every: Annotated[str, typer.Option("--schedule", help="Airflow schedule: a cron expression or @daily, @hourly.")]
    = "@daily",
    retries: Annotated[int, typer.Option(help="Retries of a failed task.", min=0, max=20)] = 2,
    no_search: NoSearchOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Write an Airflow DAG: one task per stage command, then `conveyor monitor --act`."""
    from conveyor.runner import load_project
    from conveyor.runner._schedule import airflow_dag

    config, workspace = load_project(project)
    path = airflow_dag(config, workspace, output, schedule=every, retries=retries, no_search=no_search)
    typer.echo(f"wrote {path}: put it in Airflow's dags folder (its workers need the `conveyor` command)")


labels_app = typer.Typer(
    help="True outcomes of served predictions, by request id: `conveyor monitor` scores them.",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(labels_app, name="labels")


@labels_app.command("add")
def labels_add(
    file: Annotated[Path, typer.Argument(help="A CSV with a request id column and a label column.")],
    id_column: Annotated[str, typer.Option("--id", help="The request id column.")] = "request_id",
    label_column: Annotated[Optional[str], typer.Option(
        "--label", help="The label column (default: the target's name, else `label`).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Change labels already recorded (without it, a different label is refused).")] = False,
    project: ProjectOpt = Path("."),
    for_model: ForOpt = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """Add labels of served predictions; rows that do not match the log are set aside with their line."""
    from conveyor.runner import add_labels_project, load_project, model_configs

    with _locked(project, "conveyor labels add", no_wait):
        config, workspace = load_project(project)
        own = model_configs(config, for_model, one=True)[0]
        added = add_labels_project(own, workspace, file, id_column, label_column, replace)
    typer.echo(added.summary())  # plain lines: a label file's path is long, and logs should not wrap
    for line in added.first_rejected:
        typer.echo(f"  {line}")
    if added.rejected_file:
        typer.echo(f"rejected rows, with their line and reason: {added.rejected_file}")
    typer.echo(f"{added.labeled_total} labeled predictions of {own.name}; `conveyor monitor` scores them")
    if added.rows and not added.accepted and not added.skipped:
        raise typer.Exit(1)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _return_freed_memory() -> None:
    """Have Polars' allocator hand freed pages back to the system at once (it keeps them ~10 s).

    A whole `conveyor run` is one process: a stage would otherwise start from the pages the one
    before it freed (1M rows: features 650 MB resident after the stage instead of 270 MB). Set
    before Polars is first imported (its jemalloc reads this on start); a user's own setting wins.
    """
    import os

    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


def cli() -> None:
    """Entry point: user errors print one clear message and exit non-zero, without a traceback."""
    import warnings

    # The application, not the library, decides what reaches the user's terminal: the
    # libraries' own deprecation notes and MLflow's hints are for their developers.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?$")
    _return_freed_memory()
    try:
        app()
    except ConveyorError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
