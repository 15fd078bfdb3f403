"""The API key of /predict, checked before anything reads the body; then 415 and 413 from the headers.

`Guard` is a plain ASGI middleware: a request to /predict without a valid key is a 401 for
every method, before FastAPI reads, parses or validates the body (a caller without a key
learns nothing about the schema). The `Security` dependencies declare the same two schemes
in OpenAPI (and check again, should the middleware ever be left out).
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's parameters from the annotations.

import hmac
import os
from typing import Any

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.core.config import ServingConfig
from conveyor.core.errors import ServingError

__all__ = ["Guard", "api_key_of", "security"]

UNAUTHORIZED = "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key: KEY')"
NOT_JSON = "POST /predict takes a JSON body: send 'Content-Type: application/json'"


def api_key_of(serving: ServingConfig) -> str | None:
    """The key from `serving.api_key_env`'s variable; None without auth; ServingError if it is empty."""
    if not serving.api_key_env:
        return None
    key = os.environ.get(serving.api_key_env)
    if not key:
        raise ServingError(
            f"serving.api_key_env is {serving.api_key_env!r} but that environment variable "
            "is empty; set it, or remove the key to serve without auth"
        )
    return key


def _matches(given: str | None, key: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def authorized(bearer: str | None, header: str | None, key: str) -> bool:
    """Either the Bearer token or the X-API-Key header holds the key (compared in constant time)."""
    return _matches(bearer, key) | _matches(header, key)  # `|`: no short cut, both are compared


def _bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class Guard:
    """On `path`: 401 without the key (any method); then, for a POST, 415 if the Content-Type is not
    JSON and 413 if the Content-Length is over `max_body_bytes`, all before a byte of the body is read.

    A POST without a Content-Type is left to FastAPI, which does not parse it as JSON (a 422). A body
    without a Content-Length (chunked) is counted as it arrives by the route's own `max_body_size`.
    """

    def __init__(self, app: ASGIApp, *, path: str, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.path = path
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_key is not None and not authorized(
            _bearer_token(headers.get("authorization")), headers.get("x-api-key"), self.api_key
        ):
            response = JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        if scope["method"] == "POST":
            content_type = headers.get("content-type")
            if content_type is not None and not _is_json(content_type):
                await JSONResponse({"detail": NOT_JSON}, 415)(scope, receive, send)
                return
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body_bytes:
                detail = f"the body is {length} bytes, over the limit of {self.max_body_bytes}; send smaller batches"
                await JSONResponse({"detail": detail}, 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def security(api_key: str | None) -> list[Any]:
    """Route dependencies declaring (and checking) Bearer and X-API-Key in OpenAPI; none without a key."""
    if api_key is None:
        return []
    bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
    header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")

    def api_key_required(
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        header: str | None = Security(header_scheme),
    ) -> None:
        if not authorized(None if bearer is None else bearer.credentials, header, api_key):
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    return [Depends(api_key_required)]
