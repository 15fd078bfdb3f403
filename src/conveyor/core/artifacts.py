"""An artifact: what one stage hands to the next, identified by content, with a typed result.

Every stage returns an `Artifact` whose `result` is a frozen, typed `Result` defined by the
stage that owns it (`RawSnapshot`, `CleanData`, `TrainResult`, `PromotionDecision`, ...).
The runner stores artifacts as JSON with paths relative to the workspace, so a workspace can
be copied elsewhere and every record still points inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Artifact", "Result", "relative_to", "resolve_in"]


class Result(BaseModel):
    """The typed outcome of one stage: frozen, validated, with a JSON form (`model_dump`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = "result"

    def summary(self) -> str:
        """One line for the `conveyor run` table."""
        return ""


R = TypeVar("R")
"""The result type: a `Result` subclass, or a Protocol a consuming stage declares for what it reads."""


def relative_to(path: Path, root: Path) -> str:
    """`path` as a POSIX string relative to `root` when it is inside it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def resolve_in(text: str, root: Path) -> Path:
    """A path stored by `relative_to`, made absolute against `root`."""
    path = Path(text)
    return path if path.is_absolute() else root / path


@dataclass(frozen=True)
class Artifact(Generic[R]):
    """A file (or folder) a stage produced, its content hash, what made it, and its typed result.

    `inputs` maps each input's name to its digest (`{"raw": "9f3a..."}`), so lineage can be
    walked back from any artifact through the artifact records of the runner.
    """

    kind: str
    path: Path
    digest: str
    result: R
    inputs: dict[str, str] = field(default_factory=dict)

    def to_json(self, root: Path) -> dict[str, Any]:
        if not isinstance(self.result, Result):
            raise TypeError(f"an artifact's result must be a Result, got {type(self.result).__name__}")
        return {
            "kind": self.kind,
            "path": relative_to(self.path, root),
            "digest": self.digest,
            "inputs": dict(self.inputs),
            "result": self.result.model_dump(mode="json"),
        }

    @staticmethod
    def from_json(data: dict[str, Any], root: Path, result_type: type[Result]) -> Artifact[Any]:
        return Artifact[Any](
            kind=str(data["kind"]),
            path=resolve_in(str(data["path"]), root),
            digest=str(data["digest"]),
            inputs={str(k): str(v) for k, v in dict(data.get("inputs", {})).items()},
            result=result_type.model_validate(data["result"]),
        )

    def write(self, path: Path, root: Path) -> None:
        """Write the JSON form atomically (a temp file renamed over the target)."""
        from conveyor.core.report import write_text

        write_text(path, json.dumps(self.to_json(root), indent=2))
