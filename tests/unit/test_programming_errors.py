"""A programming error is a traceback, not a ConveyorError: the CLI prints a ConveyorError as one line
for a user to act on, and a bug in the wiring is not something a user can fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.errors import ConveyorError
from conveyor.core.stage import Upstream


class _Made(Result):
    rows: int


class _Other(Result):
    name: str


def test_a_stage_output_not_handed_over_is_a_lookup_error_not_a_conveyor_error(tmp_path: Path) -> None:
    upstream = Upstream({"prepare": Artifact("clean", tmp_path, "d1", _Made(rows=3))})
    with pytest.raises(LookupError, match="'ingest' was not handed") as caught:
        upstream.get("ingest", _Made)
    assert not isinstance(caught.value, ConveyorError)


def test_a_stage_output_of_the_wrong_type_is_a_type_error_not_a_conveyor_error(tmp_path: Path) -> None:
    upstream = Upstream({"prepare": Artifact("clean", tmp_path, "d1", _Made(rows=3))})
    with pytest.raises(TypeError, match="holds a _Made, expected a _Other") as caught:
        upstream.get("prepare", _Other)
    assert not isinstance(caught.value, ConveyorError)
    assert upstream.get("prepare", _Made).result.rows == 3  # the right name and type: handed out
