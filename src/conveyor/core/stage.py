"""What a stage declares about itself, in one place, for the runner to walk.

A stage package exports one `Stage` per stage it owns (sources: `INGEST`; prep: `PREPARE`, `EDA`;
features: `FEATURES`, `DATASET`; training: `TRAIN`, `PROMOTE`). The runner knows nothing else
about a stage: its cache key is made of what the stage declares here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.errors import ConveyorError
from conveyor.core.workspace import Workspace

__all__ = ["Stage", "Upstream"]

R = TypeVar("R", bound=Result)
T = TypeVar("T")


class Upstream:
    """The artifacts a stage needs, by stage name, handed out with their result type checked.

    A stage never imports another stage's result class: it names what it reads as a
    `typing.Protocol` (decorated `@runtime_checkable`) and asks for the artifact by that.
    """

    def __init__(self, artifacts: Mapping[str, Artifact[Any]]) -> None:
        self._artifacts = dict(artifacts)

    def get(self, name: str, result_type: type[T]) -> Artifact[T]:
        try:
            artifact = self._artifacts[name]
        except KeyError:
            raise ConveyorError(f"internal: stage output {name!r} was not handed to this stage") from None
        if not isinstance(artifact.result, result_type):
            raise ConveyorError(
                f"internal: stage output {name!r} holds a {type(artifact.result).__name__}, "
                f"expected a {result_type.__name__}"
            )
        return artifact  # the isinstance check above makes this an Artifact[R]


@dataclass(frozen=True)
class Stage(Generic[R]):
    """One node of the pipeline.

    - `needs`: the stages whose artifacts `run` reads (by name);
    - `sections`: the `conveyor.yaml` sections it reads (part of its cache key);
    - `version`: bumped whenever the stage's code changes what it produces (part of the key);
    - `result`: the type of its artifact's result, to read records back;
    - `run(config, workspace, upstream)`: does the work, returns the artifact;
    - `extra_key(config, workspace)`: inputs outside the config and upstream artifacts
      (ingest: the source file's content hash);
    - `still_valid(config, workspace, artifact)`: None when a cached artifact can be reused,
      else the reason it cannot (e.g. its MLflow run was deleted).
    """

    name: str
    needs: tuple[str, ...]
    sections: tuple[str, ...]
    version: int
    result: type[R]
    run: Callable[[Config, Workspace, Upstream], Artifact[R]]
    describe: str
    help: str
    extra_key: Callable[[Config, Workspace], Any] | None = None
    still_valid: Callable[[Config, Workspace, Artifact[R]], str | None] | None = None
