"""ASGI fast path for the hottest endpoint: single point lookups.

``GET /api/v1/lookup?lon=&lat=[&crs=]`` is what other systems call thousands of times a
second. FastAPI's routing, parameter validation and dependency solving cost several
times more than the lookup itself, so this middleware answers the plain, valid case
directly with the same core calls and the same JSON as the FastAPI route
(``api.routers.lookup.single_answer``). Anything else — other parameters, malformed
values, errors — falls through to the FastAPI route, which stays the reference
(validation, error bodies, OpenAPI).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routers.lookup import single_answer
from api.security import LOOKUP_ROLES, authenticate
from gridmap.errors import GridmapError
from gridmap.lookup.service import LookupService

PATH = "/api/v1/lookup"
SIMPLE_PARAMS = frozenset({"lon", "lat", "crs"})
HEADERS = [(b"content-type", b"application/json")]


class LookupFastPath:
    """Middleware: answer simple single lookups; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            body = _answer(scope)
            if body is not None:
                headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _allowed(scope: Scope) -> bool:
    """The same check as the route's dependencies: a known caller with a lookup role."""
    try:
        return authenticate(HTTPConnection(scope)).role in LOOKUP_ROLES
    except GridmapError:
        return False


def _answer(scope: Scope) -> bytes | None:
    """The response body, or None when the full route should handle the request."""
    params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    if not params.keys() <= SIMPLE_PARAMS:
        return None
    if not _allowed(scope):
        return None  # the route answers 401/403/429 with the usual error body
    try:
        lon, lat = float(params["lon"]), float(params["lat"])
    except (KeyError, ValueError):
        return None
    service: Any = getattr(scope["app"].state, "lookup", None)
    if not isinstance(service, LookupService):
        return None
    crs = params.get("crs", "4326")
    try:
        res = service.locate_one(lon, lat, crs)
    except GridmapError:
        return None
    if res.errors:
        return None
    return orjson.dumps(single_answer(service, res, crs))
