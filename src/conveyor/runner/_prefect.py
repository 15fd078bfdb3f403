"""`conveyor schedule prefect`: the stages and the loop as a Prefect flow.

One Prefect task per stage (`ingest`, `prepare`, ..., `promote`: the same stage runs, cache
and records as `conveyor <stage>`), then `monitor` (`conveyor monitor --act`: the project's
policy on what monitor found), in order. Each task retries (`retries`, `retry_delay` seconds
apart); each runs under the project lock, like the stage command, and reads the project file
again, so a change between runs is picked up. A failed stage fails the flow with that stage's
one-line error, and no later stage runs.

Prefect is an optional extra (`pip install 'conveyor[prefect]'`), imported only here, only
when a flow is built. Without `PREFECT_API_URL` a run talks to Prefect's ephemeral local
server; with it, to that server (Prefect Cloud or `prefect server start`).

Three ways to use it: run the flow once now (`conveyor schedule prefect`), serve it on a
schedule from this process (`--every 1h` / `--cron '0 3 * * *'`: `Flow.serve`), or write a
flow file a team deploys (`-o flows/`: `python flows/conveyor_<name>.py` serves it,
`prefect deploy flows/conveyor_<name>.py:conveyor_<name>` deploys it to a work pool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.core.report import write_text
from conveyor.core.workspace import Workspace
from conveyor.runner._prefect_tasks import _prefect, prefect_steps

__all__ = [
    "FlowOutcome", "every_interval", "prefect_deployment", "prefect_flow", "prefect_flow_file", "prefect_steps", "run_flow",
]

_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def every_interval(text: str) -> timedelta:
    """`30m`, `1h`, `2d`, `90s` as a timedelta (a ConfigError names the forms it accepts)."""
    found = _EVERY.match(text)
    if found is None or int(found.group(1)) == 0:
        raise ConfigError(f"--every {text!r}: give a positive number and a unit, e.g. 90s, 30m, 1h or 1d")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def prefect_flow(project: str | Path, *, retries: int = 2, retry_delay: float = 60.0, no_search: bool = False,
                 act: bool = True) -> tuple[Any, dict[str, Any]]:
    """The project's flow (`conveyor-<name>`, a module-level flow Prefect can load by its
    entrypoint when it serves or deploys it) and the parameters to run it with."""
    _prefect()
    from conveyor.runner._commands import load_project
    from conveyor.runner._prefect_flow import conveyor_flow

    root = str(Path(project).resolve())
    config, _ = load_project(Path(root))
    parameters = {"project": root, "retries": retries, "retry_delay": retry_delay, "no_search": no_search, "act": act}
    return conveyor_flow.with_options(name=f"conveyor-{config.name}"), parameters


@dataclass
class FlowOutcome:
    """A finished flow run: its state, each task's line, and the failure if it failed."""

    name: str
    state: str
    message: str
    completed: bool
    lines: list[str] = field(default_factory=list)
    error: BaseException | None = None


def run_flow(flow: Any, parameters: dict[str, Any]) -> FlowOutcome:
    """Run the flow once now; a failed stage's error is kept (not raised) for the caller to show."""
    state = flow(**parameters, return_state=True)
    outcome = FlowOutcome(flow.name, str(state.name), str(state.message or ""), bool(state.is_completed()))
    if outcome.completed:
        done = state.result()
        outcome.lines = [f"{task}: {line}" if line and not line.startswith(task) else line
                         for task, text in done.items() for line in (text.splitlines() or [f"{task}: done"])]
    else:
        error = state.result(raise_on_failure=False)
        outcome.error = error if isinstance(error, BaseException) else ConveyorError(outcome.message)
    return outcome


def prefect_deployment(flow: Any, parameters: dict[str, Any], name: str, *, every: str | None = None,
                       cron: str | None = None) -> Any:
    """The flow as a deployment on an interval (`every`: 30m, 1h, 1d) or a cron expression."""
    if (every is None) == (cron is None):
        raise ConfigError("give one of --every (e.g. 1h) or --cron (e.g. '0 3 * * *') to serve the flow")
    if cron is not None:
        return flow.to_deployment(name=name, cron=_cron(cron), parameters=parameters)
    return flow.to_deployment(name=name, interval=every_interval(every or ""), parameters=parameters)


def _cron(text: str) -> str:
    _prefect()
    from prefect.schedules import Cron

    try:
        return str(Cron(text).cron)
    except ValueError as exc:
        raise ConfigError(f"--cron {text!r}: not a cron expression; e.g. '0 3 * * *' (minute hour day month "
                          "weekday)") from exc


_FILE = '''"""Conveyor project {name} as a Prefect flow: the stages, then `monitor --act`.

Written by `conveyor schedule prefect -o`. Each stage is a Prefect task with {retries} retries,
{delay:g} s apart. Serve it on its schedule from this machine:

    python {path}

or deploy it to a work pool (the workers need Conveyor: pip install 'conveyor[prefect]'):

    prefect deploy {path}:{function} -n {name} {schedule_flag}
"""

from datetime import timedelta  # noqa: F401 (the schedule below may use it)

from prefect import flow

from conveyor.runner import prefect_steps

PROJECT = {project!r}


@flow(name={flow_name!r}, log_prints=True, persist_result=False)
def {function}(project: str = PROJECT, retries: int = {retries!r}, retry_delay: float = {delay!r},
{indent}no_search: bool = {no_search!r}, act: bool = {act!r}) -> dict[str, str]:
    """Conveyor {name}: a task per stage, then `monitor --act`."""
    return prefect_steps(project, retries=retries, retry_delay=retry_delay, no_search=no_search, act=act)


if __name__ == "__main__":
    {function}.serve(name={name!r}, {schedule})
'''


def prefect_flow_file(config: Config, workspace: Workspace, folder: Path, *, retries: int = 2,
                      retry_delay: float = 60.0, no_search: bool = False, act: bool = True,
                      every: str | None = None, cron: str | None = None) -> Path:
    """Write `<folder>/conveyor_<name>.py`: a flow calling `prefect_steps`, and how to serve it."""
    if every is not None and cron is not None:
        raise ConfigError("give --every or --cron, not both")
    if every is not None:
        interval = every_interval(every)
        schedule, flag = f"interval=timedelta(seconds={int(interval.total_seconds())})", \
            f"--interval {int(interval.total_seconds())}"
    else:
        cron = cron or "0 3 * * *"
        _cron(cron)
        schedule, flag = f"cron={cron!r}", f"--cron {cron!r}"
    function = "conveyor_" + re.sub(r"\W", "_", config.name)
    filename = f"{function}.py"
    text = _FILE.format(name=config.name, path=filename, function=function, flow_name=f"conveyor-{config.name}",
                        indent=" " * (len(function) + 5), retries=retries, delay=retry_delay,
                        schedule_flag=flag, project=str(workspace.root.resolve()), no_search=no_search, act=act,
                        schedule=schedule)
    return write_text(folder / filename, text)


def schedule_prefect(project: Path, *, output: Path | None, every: str | None, cron: str | None, retries: int,
                     retry_delay: float, no_search: bool, echo: Any) -> None:
    """`conveyor schedule prefect`: write the flow file (-o), serve the flow (--every/--cron), or run it once."""
    from conveyor.runner._commands import load_project

    config, workspace = load_project(project)
    if output is not None:
        path = prefect_flow_file(config, workspace, output, retries=retries, retry_delay=retry_delay,
                                 no_search=no_search, every=every, cron=cron)
        echo(f"wrote {path}: `python {path}` serves it; `prefect deploy {path}:{path.stem}` deploys it to a work pool")
        return
    flow, parameters = prefect_flow(workspace.root, retries=retries, retry_delay=retry_delay, no_search=no_search)
    if every is not None or cron is not None:
        deployment = prefect_deployment(flow, parameters, config.name, every=every, cron=cron)
        from prefect import serve

        echo(f"serving {flow.name} ({'every ' + every if every else 'cron ' + repr(cron)}); Ctrl-C stops")
        serve(deployment)
        return
    outcome = run_flow(flow, parameters)
    for line in outcome.lines:
        echo(line)
    echo(f"flow {outcome.name}: {outcome.state}")
    if outcome.error is not None:
        raise outcome.error  # a ConveyorError: the CLI prints its one line
