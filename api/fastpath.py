"""ASGI fast paths for the hottest endpoints: single point lookups and event intake.

``GET /api/v1/lookup?lon=&lat=[&crs=]`` is what other systems call thousands of times a
second. FastAPI's routing, parameter validation and dependency solving cost several
times more than the lookup itself, so this middleware answers the plain, valid case
directly with the same core calls and the same JSON as the FastAPI route
(``api.routers.lookup.single_answer``). Anything else — other parameters, malformed
values, errors — falls through to the FastAPI route, which stays the reference
(validation, error bodies, OpenAPI).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from api.event_schemas import EventIn
from api.routers.lookup import single_answer
from api.security import LOOKUP_ROLES, authenticate
from gridmap.errors import DatabaseUnavailableError, GridmapError
from gridmap.events import batch, intake, queries
from gridmap.lookup.service import LookupService

log = logging.getLogger("gridmap.api.fastpath")
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


def _caller(scope: Scope) -> Any | None:
    """The same check as the route's dependencies: a known caller with a lookup role."""
    try:
        principal = authenticate(HTTPConnection(scope))
    except (GridmapError, SQLAlchemyError):  # e.g. the key cache reloading, database down
        return None  # the route answers: 401/403/429, or 503
    return principal if principal.role in LOOKUP_ROLES else None


def _answer(scope: Scope) -> bytes | None:
    """The response body, or None when the full route should handle the request."""
    params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    if not params.keys() <= SIMPLE_PARAMS:
        return None
    principal = _caller(scope)
    if principal is None:
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
    return orjson.dumps(single_answer(service, res, crs, principal))


INTAKE_PATH = "/api/v1/events"


class EventIntakeFastPath:
    """Middleware: store plain JSON event reports without FastAPI's request machinery.

    ``POST /api/v1/events`` with a JSON body, no photos and no Idempotency-Key is
    validated with the route's own model (:class:`api.event_schemas.EventIn`), stored by
    the same core code as the route (:mod:`gridmap.events.intake`), together with the
    reports arriving at the same time (:class:`gridmap.events.batch.IntakeBatcher`: one
    transaction per batch), and answered with the route's JSON after the commit. The
    caller is authenticated like the route (:func:`api.security.authenticate`, ``roles``
    = the events router's ``Allow``).
    Anything else — unauthenticated or other callers, other headers, invalid bodies,
    core errors before the commit — is replayed to the FastAPI route, which stays the
    reference for access, validation, error bodies and OpenAPI; nothing of a replayed
    attempt is kept.
    """

    def __init__(self, app: ASGIApp, roles: tuple[Any, ...]) -> None:
        self.app = app
        self.roles = frozenset(roles)
        self.replies: _Replies | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == INTAKE_PATH
                and scope["method"] == "POST" and _plain_json(scope)):
            body = await _read_body(receive)
            if body is None:
                return
            loop = asyncio.get_running_loop()
            if self.replies is None or self.replies.loop is not loop:
                self.replies = _Replies(loop)
            answer = await _intake(scope, body, self.roles, self.replies)
            if answer is not None:
                status, payload = answer
                await _send_json(send, status, payload)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


def _reporter(scope: Scope, roles: frozenset[Any]) -> Any | None:
    """The caller if the route would admit them, else None (from the in-memory cache)."""
    try:
        principal = authenticate(HTTPConnection(scope))
    except (GridmapError, SQLAlchemyError):  # e.g. the key cache reloading, database down
        return None  # the route answers: 401/403/429, or 503
    return principal if principal.role in roles else None


def _plain_json(scope: Scope) -> bool:
    kind = b""
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return False
        if name == b"content-type":
            kind = value
    return kind.split(b";")[0].strip() == b"application/json"


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [*HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _intake(scope: Scope, body: bytes, roles: frozenset[Any],
                  replies: _Replies) -> tuple[int, Any] | None:
    """(status, JSON) of the stored report, or None to let the FastAPI route answer.

    The report goes to the process's :class:`~gridmap.events.batch.IntakeBatcher` (group
    commit) and is answered after its batch commits. Whatever was not stored (invalid,
    or in a batch that failed) is replayed to the route, which stores it on its own.
    """
    try:
        payload = EventIn.model_validate_json(body)
    except ValidationError:
        return None
    state = scope["app"].state
    batcher = getattr(state, "intake", None)
    if payload.photos or not isinstance(batcher, batch.IntakeBatcher):
        return None
    principal = _reporter(scope, roles)
    if principal is None:
        return None
    now = state.clock.now()
    reply = replies.expect()
    batcher.submit_with(intake.Report(**payload.model_dump(exclude={"photos"})), now=now,
                        answer=_intake_answer(now, principal), done=reply.deliver,
                        principal=principal)
    try:
        return 201, await reply.future
    except batch.CommitFailedError as exc:  # never acknowledge what may not be stored
        log.warning("event commit failed: %s", exc)
        return error_response(DatabaseUnavailableError(
            "the database is unavailable; try again shortly"))
    except batch.AnswerFailedError:
        raise  # stored: replaying it would store it twice
    except Exception:  # noqa: BLE001 - not stored: the route redoes it and maps the error
        return None


def _intake_answer(now: datetime, principal: Any) -> Callable[[Any, Any], Any]:
    return lambda session, stored: queries.intake_view(session, stored, now, principal)


class _Reply:
    def __init__(self, replies: _Replies) -> None:
        self.replies = replies
        self.future: asyncio.Future[Any] = replies.loop.create_future()

    def deliver(self, result: Any, error: BaseException | None) -> None:
        self.replies.deliver(self.future, result, error)


class _Replies:
    """Results handed from the writer thread to the event loop, one wake-up per burst.

    A ``concurrent.futures.Future`` wrapped for asyncio per report (a condition, two
    callbacks, a ``call_soon_threadsafe`` each) was ~8% of the worker's CPU at load.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []

    def expect(self) -> _Reply:
        return _Reply(self)

    def deliver(self, future: asyncio.Future[Any], result: Any,
                error: BaseException | None) -> None:
        """Called in the writer thread."""
        with self._lock:
            self._pending.append((future, result, error))
            first = len(self._pending) == 1
        if first:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for future, result, error in pending:
            if future.done():  # the request went away
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
