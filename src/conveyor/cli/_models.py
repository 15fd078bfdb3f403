"""`conveyor models` and `models show VERSION`: the registry, the champion's history, `monitor --act`'s records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli._app import ForOpt, ProjectOpt, _console, _project

if TYPE_CHECKING:
    from conveyor.runner import ModelRegistry

models_app = typer.Typer(
    help="Registered model versions: aliases, metrics, lineage, and the history of @champion.",
    no_args_is_help=False,
    rich_markup_mode=None,
)


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, project: ProjectOpt = Path("."), for_model: ForOpt = None) -> None:
    """A table of the registered versions, then every move of @champion (who, when, why); each model's in turn."""
    if ctx.invoked_subcommand is not None:
        return
    from conveyor.runner import model_configs

    opened = _project(project)
    for own in model_configs(opened.config, for_model):
        _versions_table(opened.models(own.model))
        _loop_table(own, opened.workspace)


def _versions_table(registry: ModelRegistry) -> None:
    from rich.table import Table

    versions = registry.versions
    console = _console()
    if not versions:
        console.print(f"no registered version of {registry.name!r} yet: run `conveyor run`")
        return
    table = Table(title=f"{registry.name}: registered versions", title_justify="left")
    for column in ("version", "aliases", "model", "test metrics", "training set", "created", "run"):
        table.add_column(column)
    for info in versions:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items()))
        table.add_row(info.version, " ".join(f"@{a}" for a in info.aliases) or "-", info.model, shown,
                      info.training_set[:16], info.created, info.run_id[:12])
    console.print(table)
    history = registry.history
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
    from conveyor.runner import model_configs

    opened = _project(project)
    config = model_configs(opened.config, for_model, one=True)[0]
    info = opened.model_version(version, model=for_model)
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


def _moved(change: Any) -> None:
    from rich.markup import escape

    _console().print(escape(f"@champion {'v' + change.old if change.old else 'none'} -> v{change.new} by {change.by} "
                            f"at {change.at}: {change.why}"), soft_wrap=True)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The registered version to make @champion.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, recorded in the @champion history.")] = None,
    project: ProjectOpt = Path("."),
    for_model: ForOpt = None,
) -> None:
    """Move @champion to a version by hand (same registry lock as the gate; recorded in the history)."""
    _moved(_project(project).promote(version, reason=reason, model=for_model))


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str | None, typer.Option("--reason", help="Why, recorded in the @champion history.")] = None,
    project: ProjectOpt = Path("."),
    for_model: ForOpt = None,
) -> None:
    """Move @champion back to the version it pointed to before its latest move (twice: back again)."""
    _moved(_project(project).rollback(reason=reason, model=for_model))
