"""Events and work orders: intake, reading, lifecycle actions, history, live stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.dependencies import LookupDep, SessionDep
from api.event_deps import ClockDep
from api.event_schemas import (
    ActionIn,
    CategoryOut,
    EventIn,
    EventOut,
    IntakeOut,
    TransitionOut,
)
from api.schemas import ErrorOut
from api.security import PrincipalDep
from gridmap.auth.principal import Principal
from gridmap.db.engine import session_scope
from gridmap.events import intake, lifecycle, notify, queries

router = APIRouter(prefix="/api/v1", tags=["events"])
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut},
    413: {"model": ErrorOut},
}
EventId = Annotated[int, Path(ge=1, description="event id")]


@router.get("/events/categories", operation_id="list_event_categories",
            response_model=list[CategoryOut])
def list_categories(session: SessionDep) -> Any:
    """The event classification tree (leaves are what reports are filed under)."""
    return [
        {c: getattr(cat, c) for c in CategoryOut.model_fields}
        for cat in queries.categories(session)
    ]


@router.post("/events", operation_id="report_event", response_model=IntakeOut,
             status_code=201, responses=ERRORS)
def report_event(
    body: EventIn,
    session: SessionDep,
    clock: ClockDep,
    lookup: LookupDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """Report an event; it is assigned at once. A repeated Idempotency-Key returns the original.

    Keys are per caller; a reporter may file only as a resident, a grid worker as a grid
    worker or resident.
    """
    fields = body.model_dump(exclude={"photos"})
    report = intake.Report(**fields, photos=intake.decode_photos(body.photos))
    now = clock.now()
    result = intake.store_report(session, report, now=now, idempotency_key=idempotency_key,
                                 lookup=lookup, principal=principal)
    if not result.created:
        response.status_code = 200
    answer = queries.intake_view(session, result, now, principal)
    return answer


@router.get("/events", operation_id="list_events", response_model=list[EventOut],
            responses=ERRORS)
def list_events(
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
    status: str | None = None,
    area: Annotated[str | None, Query(pattern=r"^[0-9]{6,15}$",
                                      description="area code prefix")] = None,
    queue: str | None = None,
    category: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Events, newest first (``queue=command_center`` lists the flagged ones)."""
    return queries.list_events(session, clock.now(), status=status, grid_prefix=area,
                               queue=queue, category=category, limit=limit, offset=offset,
                               principal=principal)


async def _feed(request: Request, limit: int | None, principal: Principal,
                poll_s: float = 0.25) -> AsyncIterator[bytes]:
    engine = request.app.state.engine

    def read(after: int | None) -> tuple[int, list[dict[str, Any]]]:
        with session_scope(engine) as session:
            if after is None:
                return notify.latest_change_id(session), []
            changes = notify.changes_since(session, after, principal=principal)
            return (changes[-1]["change_id"] if changes else after), changes

    last, _ = await asyncio.to_thread(read, None)
    yield b": connected\n\n"
    sent, idle = 0, 0.0
    while limit is None or sent < limit:
        last, changes = await asyncio.to_thread(read, last)
        for change in changes[: None if limit is None else limit - sent]:
            yield f"id: {change['change_id']}\nevent: {change['kind']}\n" \
                  f"data: {json.dumps(change)}\n\n".encode()
            sent += 1
        if changes:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        idle += poll_s
        if idle >= 15:
            idle = 0.0
            yield b": keep-alive\n\n"
        await asyncio.sleep(poll_s)


@router.get(
    "/events/stream",
    operation_id="stream_events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "Server-Sent Events: one per event change"}},
)
async def stream_events(
    request: Request,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query(ge=1, description="close after this many")] = None,
) -> StreamingResponse:
    """Live updates of every event change (each audited action) as Server-Sent Events."""
    return StreamingResponse(_feed(request, limit, principal), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/events/{event_id}", operation_id="get_event", response_model=EventOut,
            responses=ERRORS)
def get_event(event_id: EventId, session: SessionDep, clock: ClockDep,
              principal: PrincipalDep) -> Any:
    """One event, with its traffic light and the actions allowed now."""
    return queries.event_view(session, event_id, clock.now(), principal)


@router.post("/events/{event_id}/actions", operation_id="act_on_event",
             response_model=EventOut, responses=ERRORS)
def act_on_event(event_id: EventId, body: ActionIn, session: SessionDep,
                 clock: ClockDep, principal: PrincipalDep) -> Any:
    """Apply a lifecycle action as the caller (409 lists the actions allowed from this state).

    The role is the caller's own; ``role`` may name another only where the caller may act
    in it (an admin as anyone, a department's system key as ``department``).
    """
    queries.visible_event(session, event_id, principal)  # 404 outside the caller's area
    acting = lifecycle.acting_as(principal, body.role, body.actor)
    now = clock.now()
    photos = intake.decode_photos(body.photos)
    event = lifecycle.transition(session, event_id, body.action, now=now, actor=acting.actor,
                                 role=acting.role, note=body.note, hours=body.hours,
                                 rating=body.rating)
    if photos:
        intake.attach_photos(session, event, photos, stage="feedback")
    notify.publish(session, event, body.action, now)
    view = queries.describe(session, event, now)
    return view


@router.get("/events/{event_id}/history", operation_id="get_event_history",
            response_model=list[TransitionOut], responses=ERRORS)
def get_history(event_id: EventId, session: SessionDep, principal: PrincipalDep) -> Any:
    """The audit trail: who did what, when, with which note."""
    queries.visible_event(session, event_id, principal)
    return [
        {"action": t.action, "from_status": t.from_status, "to_status": t.to_status,
         "actor": t.actor, "role": t.role, "note": t.note, "at": t.at.isoformat()}
        for t in lifecycle.history(session, event_id)
    ]



