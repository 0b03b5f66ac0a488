"""Request size limit: an oversized body is refused before anything reads it.

A plain ASGI middleware: ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware)
wraps every request in a task group and memory streams, ~0.5 ms of CPU per request.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class BodyLimit:
    """Answer 413 (in the usual error shape) when Content-Length exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and \
                        int(value) > self.max_bytes:
                    await _too_large(send, value.decode(), self.max_bytes)
                    return
        await self.app(scope, receive, send)


async def _too_large(send: Send, length: str, max_bytes: int) -> None:
    message = f"request body of {length} bytes exceeds the limit of {max_bytes} bytes"
    body = orjson.dumps({"error": "PayloadTooLarge", "message": message,
                         "details": [{"field": "body", "problem": "too large"}]})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def install_body_limit(app: FastAPI, max_bytes: int) -> None:
    """Refuse bodies larger than ``max_bytes`` with 413 before any route reads them."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
