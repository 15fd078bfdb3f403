"""Alerts to a webhook: one JSON POST per finding, with a timeout per attempt and retries.

Posted by `conveyor monitor` (never by the server: serving never waits on an alert). A
connection error, a timeout or a 5xx answer is retried with exponential backoff; a 4xx answer
is not (the receiver refused this alert). The secret, when configured, is read from the named
environment variable at the moment of sending and never logged or recorded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from conveyor.core.config import WebhookConfig
from conveyor.core.errors import ConfigError

__all__ = ["AlertDelivery", "post_alert"]


@dataclass(frozen=True)
class AlertDelivery:
    delivered: bool
    attempts: int
    status: int | None
    """The last HTTP status received (None: no answer)."""
    error: str = ""

    def summary(self) -> str:
        if self.delivered:
            return f"alert delivered (HTTP {self.status}, {self.attempts} attempt{'s' * (self.attempts > 1)})"
        return f"alert NOT delivered after {self.attempts} attempt{'s' * (self.attempts > 1)}: {self.error}"


def post_alert(hook: WebhookConfig, payload: dict[str, Any], *, backoff_s: float = 0.5) -> AlertDelivery:
    """POST `payload` as JSON; retried `hook.retries` times on connection errors, timeouts and 5xx."""
    import httpx

    headers = {"User-Agent": "conveyor-monitor"}
    if hook.secret_env is not None:
        secret = os.environ.get(hook.secret_env)
        if not secret:
            raise ConfigError(f"monitoring.webhook.secret_env names {hook.secret_env}, which is not set; "
                              "export it or remove secret_env")
        headers[hook.secret_header] = secret
    attempts, status, error = 0, None, ""
    with httpx.Client(timeout=hook.timeout_s, follow_redirects=False) as http:
        for attempt in range(hook.retries + 1):
            attempts = attempt + 1
            try:
                answer = http.post(hook.url, json=payload, headers=headers)
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                status = answer.status_code
                if answer.is_success:
                    return AlertDelivery(True, attempts, status)
                error = f"HTTP {status}"
                if status < 500:
                    break  # the receiver refused this alert: sending it again changes nothing
            if attempt < hook.retries:
                time.sleep(backoff_s * 2**attempt)  # backoff between attempts, not a wait for an event
    return AlertDelivery(False, attempts, status, error)
