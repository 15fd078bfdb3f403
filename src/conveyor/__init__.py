"""Conveyor: a raw CSV to a monitored prediction API, on Feast, MLflow and FastAPI.

From Python, a project is a `Project`:

>>> from conveyor import Project
>>> project = Project.init("hour.csv", target="cnt", path="bikes")   # doctest: +SKIP
>>> project.run(search=False)                                        # doctest: +SKIP
>>> project.predict(rows)                                            # doctest: +SKIP

The names below `ConveyorError` are imported on first use, so `import conveyor` (and
`conveyor --help`) loads no Feast, MLflow, pandas or Polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor._version import __version__
from conveyor.core.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.runner._project import ModelRegistry, Project, RunResult, StageRun

__all__ = ["ConveyorError", "ModelRegistry", "Project", "RunResult", "StageRun", "__version__"]

_LAZY = frozenset({"ModelRegistry", "Project", "RunResult", "StageRun"})


def __getattr__(name: str) -> Any:
    """`conveyor.Project` and its result types, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        from conveyor.runner import _project

        value = getattr(_project, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
