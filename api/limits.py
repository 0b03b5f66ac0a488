"""Request size limits: an oversized body is refused before anything reads it.

One default for every route, with larger limits where big bodies are the point: batch
lookups (a million points of CSV is ~30 MB) and boundary-file uploads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


def install_body_limit(
    app: FastAPI, max_bytes: int, per_path: dict[str, int] | None = None
) -> None:
    """Answer 413 (in the usual error shape) when Content-Length exceeds the limit.

    ``per_path`` maps path prefixes to their own limits (longest prefix wins).
    """
    overrides = sorted((per_path or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(path: str) -> int:
        return next((n for prefix, n in overrides if path.startswith(prefix)), max_bytes)

    @app.middleware("http")
    async def limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:
        length = request.headers.get("content-length")
        allowed = limit_for(request.url.path)
        if length is not None and length.isdigit() and int(length) > allowed:
            message = f"request body of {length} bytes exceeds the limit of {allowed} bytes"
            return JSONResponse({"error": "PayloadTooLarge", "message": message,
                                 "details": [{"field": "body", "problem": "too large"}]},
                                status_code=413)
        return await call_next(request)
