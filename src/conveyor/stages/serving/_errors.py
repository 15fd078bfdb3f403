"""422 answers that name the field and never echo the input back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from conveyor.stages.serving._schemas import TAGS

__all__ = ["MAX_ERRORS", "public_errors", "validation_error"]

MAX_ERRORS = 50
"""At most this many errors in one 422; a count of the rest follows."""


def _loc(loc: Sequence[Any]) -> list[Any]:
    """`("body", "rows", "rows", 0, "temp")` -> `["body", "rows", 0, "temp"]`: drop the union's tag."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "body" and parts[1] in TAGS:
        del parts[1]
    return parts


def public_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """type, loc and msg of each error: no `input` (the caller's data), no `ctx` (may hold it too)."""
    shown = [{"type": e["type"], "loc": _loc(e["loc"]), "msg": e["msg"]} for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append({"type": "too_many_errors", "loc": ["body"], "msg": f"{len(errors) - MAX_ERRORS} more errors"})
    return shown


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": public_errors(exc.errors())}, status_code=422)
