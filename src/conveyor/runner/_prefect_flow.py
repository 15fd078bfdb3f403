"""The Conveyor flow as a module-level Prefect flow, so that Prefect can load it by its
entrypoint when it serves or deploys it. Imported only by `conveyor.runner._prefect`, when
Prefect is installed."""

from __future__ import annotations

from prefect import flow

from conveyor.runner._prefect_tasks import prefect_steps

__all__ = ["conveyor_flow"]


@flow(name="conveyor", log_prints=True, persist_result=False)
def conveyor_flow(project: str, retries: int = 2, retry_delay: float = 60.0, no_search: bool = False,
                  act: bool = True) -> dict[str, str]:
    """A Conveyor project: a task per stage, then `monitor --act`, each with retries."""
    return prefect_steps(project, retries=retries, retry_delay=retry_delay, no_search=no_search, act=act)
