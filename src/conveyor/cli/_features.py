"""`conveyor features list` / `show VIEW` and `conveyor feature-views`: the Feast feature views."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli._app import NoWaitOpt, ProjectOpt, _console, _project, app
from conveyor.core.errors import ConveyorError


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


feature_views_app = typer.Typer(
    help="The Feast feature views (also `conveyor features list` / `show VIEW`).", no_args_is_help=False,
    invoke_without_command=True, rich_markup_mode=None,
)


def _views(project: Path) -> tuple[Any, list[Any]]:
    opened = _project(project)
    return opened.config, opened.feature_views()


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
