"""An artifact: what one stage hands to the next, identified by content."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Artifact"]


@dataclass(frozen=True)
class Artifact:
    """A file (or folder) a stage produced, its content hash, and facts about it.

    `inputs` holds the hashes of what made it, so lineage can be walked back from any artifact.
    """

    kind: str
    path: Path
    digest: str
    inputs: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            kind=data["kind"],
            path=Path(data["path"]),
            digest=data["digest"],
            inputs=dict(data.get("inputs", {})),
            meta=dict(data.get("meta", {})),
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, default=str), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Artifact:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
