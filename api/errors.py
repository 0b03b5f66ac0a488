"""The one place where core errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.limits import PayloadTooLargeError, RateLimitedError
from gridmap.config import get_settings
from gridmap.db.refusals import REFUSALS, refused
from gridmap.errors import (
    AuthenticationError,
    ConflictError,
    DatabaseUnavailableError,
    GridmapError,
    InvalidInputError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    SetupError,
)

log = logging.getLogger("gridmap.api")

STATUS_BY_ERROR: dict[type[GridmapError], int] = {
    NotFoundError: 404,
    InvalidInputError: 422,
    OutOfRangeError: 400,
    ConflictError: 409,
    DatabaseUnavailableError: 503,
    SetupError: 503,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    PayloadTooLargeError: 413,
    RateLimitedError: 429,
}


def status_for(error: GridmapError) -> int:
    """HTTP status of a core error (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def _body(error: str, message: str, details: list[dict[str, object]] | None = None) -> dict:
    return {"error": error, "message": message, "details": details or []}


def error_response(exc: GridmapError) -> tuple[int, dict]:
    """(status, JSON body) of a core error, for ASGI fast paths that bypass the handlers."""
    return status_for(exc), _body(type(exc).__name__, exc.message, exc.details)


OPEN311_PREFIX = "/open311/"


def _open311_error(request: Request, status: int, message: str) -> Response:
    """GeoReport v2 errors: ``[{code, description}]`` (JSON) or ``<errors>`` (XML); 400 for
    bad input, as GeoReport clients expect."""
    from gridmap.events.open311 import to_xml

    status = 400 if status == 422 else status
    body = [{"code": status, "description": message}]
    if request.url.path.endswith(".xml"):
        return Response(to_xml("errors", body, "error"), status_code=status,
                        media_type="text/xml; charset=utf-8")
    return JSONResponse(body, status_code=status)


async def _gridmap_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GridmapError)
    status = status_for(exc)
    if request.url.path.startswith(OPEN311_PREFIX):
        return _open311_error(request, status, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        _body(type(exc).__name__, exc.message, exc.details), status_code=status, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"field": "?", "problem": "invalid"}
    message = f"invalid request: {first['field']}: {first['problem']}"
    if request.url.path.startswith(OPEN311_PREFIX):
        return _open311_error(request, 422, message)
    return JSONResponse(_body("InvalidInputError", message, details), status_code=422)


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(getattr(exc, "orig", None), QueryCanceled):
        # statement_timeout: say so, without echoing the SQL or its parameters.
        return JSONResponse(_body(
            "QueryTimeoutError",
            "the query took longer than the statement timeout; ask for a smaller area, "
            "bbox or batch", [{"field": "statement_timeout_ms",
                               "value": get_settings().statement_timeout_ms}]),
            status_code=503)  # fmt: skip
    log.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        _body("DatabaseUnavailableError", "the database is unavailable; try again shortly"),
        status_code=503,
    )


async def _unstorable_value(_request: Request, exc: Exception) -> JSONResponse:
    # e.g. a NUL byte in text or an integer out of range: the input, not the server, is
    # wrong. The statement and its parameters are not echoed (they may hold personal data).
    problem = str(getattr(exc, "orig", "")).splitlines()[0] if getattr(exc, "orig", None) else ""
    return JSONResponse(
        _body("InvalidInputError", f"invalid value in the request: {problem}"), status_code=422
    )


async def _refused_row(request: Request, exc: Exception) -> Response:
    # A raw psycopg connection (imports, exports, lists) hit a rule of the schema.
    assert isinstance(exc, REFUSALS)
    return await _gridmap_error(request, refused(exc, "the request"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception → status mapping on ``app``."""
    app.add_exception_handler(GridmapError, _gridmap_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DataError, _unstorable_value)
    for refusal in REFUSALS:
        app.add_exception_handler(refusal, _refused_row)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(PoolTimeoutError, _database_down)
