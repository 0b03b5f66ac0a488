"""Request size limit: an oversized body is refused before anything reads it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


def install_body_limit(app: FastAPI, max_bytes: int) -> None:
    """Answer 413 (in the usual error shape) when Content-Length exceeds ``max_bytes``."""

    @app.middleware("http")
    async def limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            message = f"request body of {length} bytes exceeds the limit of {max_bytes} bytes"
            return JSONResponse({"error": "PayloadTooLarge", "message": message,
                                 "details": [{"field": "body", "problem": "too large"}]},
                                status_code=413)
        return await call_next(request)
