"""The body of the Conveyor flow: one Prefect task per stage, then `monitor --act`, each with
retries. Apart from `conveyor.runner._prefect` so that the module-level flow
(`conveyor.runner._prefect_flow`) and the command that builds it both import it, not each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import ConfigError, ConveyorError

__all__ = ["prefect_steps"]


def _prefect() -> Any:
    try:
        import prefect
    except ImportError as exc:
        raise ConfigError("conveyor schedule prefect needs Prefect: pip install 'conveyor[prefect]'") from exc
    return prefect


def _stage_task(project: str, stage: str, no_search: bool) -> str:
    """One stage, as `conveyor <stage>` runs it: under the project lock, cached when unchanged."""
    from prefect.logging import get_run_logger

    from conveyor.runner._commands import load_project
    from conveyor.runner._lock import project_lock
    from conveyor.runner._pipeline import run_pipeline
    from conveyor.runner._project import without_search

    config, workspace = load_project(Path(project))
    logger = get_run_logger()
    with project_lock(config, workspace, f"prefect flow: conveyor {stage}", on_wait=logger.info):
        config, workspace = load_project(Path(project))  # read again under the lock
        if no_search:
            config = without_search(config)
        lines: list[str] = []

        def on_event(event: Any) -> None:
            if event.status in ("ran", "cached") and event.artifact is not None:
                lines.append(f"{event.stage}: {event.status}: {event.artifact.result.summary()}")

        try:
            run_pipeline(config, workspace, only=stage, on_event=on_event)
        except ConveyorError as exc:  # the flow's one line says which stage failed
            exc.args = (f"{stage}: {exc}", *exc.args[1:])
            raise
    for line in lines:
        logger.info(line)
    return "\n".join(lines)


def _monitor_task(project: str, act: bool, no_search: bool) -> str:
    """`conveyor monitor --act` for each model: drift and performance, then the policy."""
    from prefect.logging import get_run_logger

    from conveyor.runner._commands import load_project, model_configs, monitor_project
    from conveyor.runner._lock import project_lock
    from conveyor.runner._loop import act_on

    config, workspace = load_project(Path(project))
    logger = get_run_logger()
    lines: list[str] = []
    for own in model_configs(config, None):
        folder = workspace.prediction_log(own.model)
        if not folder.exists() or not any(folder.iterdir()):
            lines.append(f"{own.name}: no served predictions in {folder} yet: nothing to monitor")
            continue
        check = monitor_project(own, workspace, None).result
        lines.append(f"{own.name}: {check.verdict} (v{check.model_version}, {check.n_current} predictions)"
                     + ("" if check.performance is None else f"; {check.performance.summary()}"))
        if act:
            with project_lock(config, workspace, "prefect flow: conveyor monitor --act", on_wait=logger.info):
                _, workspace = load_project(Path(project))
                lines += act_on(own, workspace, check, search=not no_search).lines
    for line in lines:
        logger.info(line)
    return "\n".join(lines)


def _steps(config: Config) -> list[str]:
    from conveyor.runner._pipeline import stage_names

    return stage_names()  # with `models:`, `train` and `promote` run every model's own


def prefect_steps(project: str, *, retries: int = 2, retry_delay: float = 60.0, no_search: bool = False,
                  act: bool = True) -> dict[str, str]:
    """The body of a Conveyor flow: a task per stage, then `monitor --act`, each with retries, in
    order (a failed task stops the flow). Call it inside a Prefect flow."""
    prefect = _prefect()
    from prefect.cache_policies import NO_CACHE

    from conveyor.runner._commands import load_project

    root = str(Path(project).resolve())
    config, _ = load_project(Path(root))
    options: dict[str, Any] = {"retries": retries, "retry_delay_seconds": retry_delay, "cache_policy": NO_CACHE,
                               "persist_result": False}
    done: dict[str, str] = {}
    for name in _steps(config):
        done[name] = prefect.task(_stage_task, name=name, **options)(root, name, no_search)
    done["monitor"] = prefect.task(_monitor_task, name="monitor", **options)(root, act, no_search)
    return done
