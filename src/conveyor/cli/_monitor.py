"""`conveyor monitor`, `labels add` and `alerts`: served traffic against the training reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli._app import ForOpt, NoSearchOpt, NoWaitOpt, ProjectOpt, _console, _locked, _project


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
    from conveyor.runner import model_configs

    opened = _project(project)
    drifted = degraded = False
    for own in model_configs(opened.config, for_model):
        console = _console()
        with showing_progress(console, f"{own.name}: reading the prediction log"):  # a bar on a terminal only
            check = opened.monitor(window=window, model=own.model)
        table = Table(title=f"{own.name}: drift of {check.n_current} predictions vs {check.n_reference} training rows",
                      title_justify="left")
        for column in ("feature", "test", "p-value", "PSI", "effect", "missing ref -> cur", "drifted", "rules fired"):
            table.add_column(column)
        for row in check.rows:
            table.add_row("(model output)" if row.output else row.name, row.test, _fmt(row.p_value), _fmt(row.psi), _fmt(row.effect), _missing(row),
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


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def alerts(
    output: Annotated[Path, typer.Option("-o", "--output", help="The folder to write the two files to.")] = Path("alerts"),
    project: ProjectOpt = Path("."),
) -> None:
    """Write Prometheus alerting rules (prometheus-rules.yml) and a Grafana dashboard (grafana-dashboard.json)."""
    rules, board = _project(project).write_alerts(output)
    typer.echo(f"wrote {rules} (load it with rule_files: in prometheus.yml) and {board} (import it in Grafana)")


labels_app = typer.Typer(
    help="True outcomes of served predictions, by request id: `conveyor monitor` scores them.",
    no_args_is_help=True, rich_markup_mode=None,
)


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
    from conveyor.runner import add_labels_project, model_configs

    with _locked(project, "conveyor labels add", no_wait):  # here, not in Project.labels_add: --no-wait, and who waits
        opened = _project(project)
        own = model_configs(opened.config, for_model, one=True)[0]
        added = add_labels_project(own, opened.workspace, file, id_column, label_column, replace)
    typer.echo(added.summary())  # plain lines: a label file's path is long, and logs should not wrap
    for line in added.first_rejected:
        typer.echo(f"  {line}")
    if added.rejected_file:
        typer.echo(f"rejected rows, with their line and reason: {added.rejected_file}")
    typer.echo(f"{added.labeled_total} labeled predictions of {own.name}; `conveyor monitor` scores them")
    if added.rows and not added.accepted and not added.skipped:
        raise typer.Exit(1)
