"""POST /labels: true outcomes pushed by the systems that learn them, with the admin key.

The body is `{"labels": [{"request_id": "...", "label": ...}, ...], "replace": false}`; the
checks and the report are those of `conveyor labels add` (a `LabelSink` the runner builds over
monitoring): an unknown request id, a label that is not a class or a number, two different
labels for one request id, or a different label for one already recorded (unless `replace`)
are rejected with their item number and reason; the answer counts what was accepted.
"""

# No `from __future__ import annotations`: FastAPI reads the request model from the annotations.

from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from conveyor.stages.serving._guard import UNAUTHORIZED, _bearer_token, authorized
from conveyor.stages.serving._ports import LabelSink

__all__ = ["LABELS", "add_labels_route"]

LABELS = "/labels"
MAX_LABELS = 100_000


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=200, description="The request id of a served prediction (from its answer).")
    label: bool | int | float | str | None = Field(description="The true outcome: the target's value.")


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(max_length=MAX_LABELS)
    replace: bool = Field(False, description="Change labels already recorded (else a different label is rejected).")


class LabelsResponse(BaseModel):
    rows: int
    accepted: int
    rejected: int
    skipped: int = Field(description="Already recorded with the same value, or repeated in this body: nothing to add.")
    replaced: int
    reasons: dict[str, int] = Field(description="How many labels each reason rejected.")
    first_rejected: list[str] = Field(description="The first rejected items: `item N: reason (value)`.")
    rejected_file: str | None = Field(description="Every rejected item, with its reason, under the project's labels/.")
    labeled_total: int


def add_labels_route(app: FastAPI, sink: LabelSink | None, admin_key: str | None) -> None:
    def detail(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"example": {"detail": text}}}}

    @app.post(LABELS, response_model=LabelsResponse,
              responses={400: detail("a body that is not JSON"), 401: detail(UNAUTHORIZED),
                         404: detail("no admin key is configured")})
    async def labels(body: LabelsRequest, request: Request) -> JSONResponse:
        """Record true outcomes of served predictions by request id (needs `serving.admin_key_env`'s key)."""
        if admin_key is None or sink is None:
            return JSONResponse({"detail": "POST /labels is off: set serving.admin_key_env"}, 404)
        headers = request.headers
        if not authorized(_bearer_token(headers.get("authorization")), headers.get("x-api-key"), admin_key):
            return JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
        pairs = [(label.request_id, label.label) for label in body.labels]
        report = await run_in_threadpool(sink, pairs, replace=body.replace)
        return JSONResponse({name: report[name] for name in LabelsResponse.model_fields})
