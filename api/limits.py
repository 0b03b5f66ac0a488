"""Request limits: rate per key/user and per client address, request body size.

Hand-written: a fixed-window counter per identity is a dozen lines, and the usual
libraries (slowapi, limits) bring storage back-ends this single-node service does not use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridmap.auth.principal import Principal
from gridmap.config import get_settings
from gridmap.errors import GridmapError


class RateLimitedError(GridmapError):
    """Too many requests from one key, user or address in the current minute."""


class PayloadTooLargeError(GridmapError):
    """The request body is over the limit for this endpoint."""


class WindowCounter:
    """Requests per identity in the current one-minute window."""

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, identity: str, limit: int) -> bool:
        """Count one request; False when ``identity`` is over ``limit`` this minute."""
        if limit <= 0:
            return True
        window = int(time.time() // 60)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            count = self._counts.get(identity, 0) + 1
            self._counts[identity] = count
        return count <= limit


_BY_PRINCIPAL = WindowCounter()


def check_principal_rate(principal: Principal) -> None:
    """RateLimitedError (429) when this key or user is over its per-minute limit."""
    if not _BY_PRINCIPAL.hit(f"{principal.kind}:{principal.id}",
                             get_settings().rate_limit_per_minute):
        raise RateLimitedError(f"rate limit of {get_settings().rate_limit_per_minute} "
                               "requests per minute exceeded for this key; slow down")


def _body_limit(path: str) -> int:
    settings = get_settings()
    if path.startswith("/api/v1/imports"):
        return settings.import_max_bytes
    if path.startswith("/api/v1/lookup"):
        return settings.lookup_max_body_bytes
    if path.startswith(("/api/v1/events", "/open311", "/api/v1/sensors")):
        from gridmap.events.settings import get_event_settings

        return get_event_settings().events_max_body_bytes
    return settings.max_body_bytes


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "details": []}, status_code=status)


class LimitsMiddleware:
    """Per-address rate limit and body size limit (declared and streamed), pure ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.by_ip = WindowCounter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        client = (scope.get("client") or ("?", 0))[0]
        if not self.by_ip.hit(client, settings.rate_limit_ip_per_minute):
            await _error(429, "RateLimitedError", "too many requests from this address; "
                         "slow down")(scope, receive, send)  # fmt: skip
            return
        limit = _body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        await self.app(scope, _capped(receive, limit), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "PayloadTooLargeError",
                  f"request body exceeds the limit of {limit:,} bytes for this endpoint")


def _capped(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    state: MutableMapping[str, Any] = {"seen": 0}

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            state["seen"] += len(message.get("body", b""))
            if state["seen"] > limit:
                raise PayloadTooLargeError(
                    f"request body exceeds the limit of {limit:,} bytes for this endpoint")
        return message

    return wrapped
