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
from conveyor.core.workspace import Workspace

__all__ = ["MODEL_STAGE_SEPARATOR", "Stage", "Upstream", "model_stage"]

MODEL_STAGE_SEPARATOR = "."
"""A model's own instance of a stage is named `<stage>.<model>` (`train.fare`, `promote.fare`)."""

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
        # A name or type that does not match is a bug in the pipeline's wiring, not bad input: a traceback.
        try:
            artifact = self._artifacts[name]
        except KeyError:
            raise LookupError(f"stage output {name!r} was not handed to this stage") from None
        if not isinstance(artifact.result, result_type):
            raise TypeError(
                f"stage output {name!r} holds a {type(artifact.result).__name__}, expected a {result_type.__name__}"
            )
        return artifact  # the isinstance check above makes this an Artifact[R]

    def renamed(self, names: Mapping[str, str]) -> Upstream:
        """The same artifacts, some handed out under another name (`train` for `train.fare`)."""
        artifacts = dict(self._artifacts)
        for alias, actual in names.items():
            if actual in self._artifacts:
                artifacts[alias] = self._artifacts[actual]
        return Upstream(artifacts)


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


def model_stage(stage: Stage[R], model: str, per_model: tuple[str, ...]) -> Stage[R]:
    """One model's instance of a stage of `models:` (`train.fare`): it runs on `config.for_model`,
    reads the same model's instance of the `per_model` stages it needs, and its cache key holds
    that model's entry of `models:`, so editing one model's entry re-runs only that model's stages."""

    def own(name: str) -> str:
        return f"{name}{MODEL_STAGE_SEPARATOR}{model}" if name in per_model else name

    renames = {name: own(name) for name in stage.needs if name in per_model}

    def run(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[R]:
        return stage.run(config.for_model(model), workspace, upstream.renamed(renames))

    def extra_key(config: Config, workspace: Workspace) -> Any:
        inner = stage.extra_key(config.for_model(model), workspace) if stage.extra_key is not None else None
        return {"model": model, "spec": config.models[model].model_dump(mode="json"), "stage": inner}

    still_valid = stage.still_valid

    def valid(config: Config, workspace: Workspace, artifact: Artifact[R]) -> str | None:
        return None if still_valid is None else still_valid(config.for_model(model), workspace, artifact)

    return Stage(
        name=f"{stage.name}{MODEL_STAGE_SEPARATOR}{model}",
        needs=tuple(own(name) for name in stage.needs),
        sections=stage.sections,
        version=stage.version,
        result=stage.result,
        run=run,
        describe=f"{stage.describe} [{model}]",
        help=stage.help,
        extra_key=extra_key,
        still_valid=valid,
    )
