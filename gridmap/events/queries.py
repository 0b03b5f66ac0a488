"""Reading events: one, a filtered list, the category tree — with the traffic light."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal
from gridmap.auth.scope import event_filter, sees_event
from gridmap.errors import NotFoundError
from gridmap.events import cache
from gridmap.events.deadlines import Calendar, traffic_light
from gridmap.events.lifecycle import allowed_actions, get_event
from gridmap.events.views import event_dict
from gridmap.models import Event, EventCategory


def categories(session: Session, *, leaves_only: bool = False) -> list[EventCategory]:
    """The classification tree, ordered by code."""
    stmt = select(EventCategory).order_by(EventCategory.code)
    if leaves_only:
        stmt = stmt.where(EventCategory.leaf)
    return list(session.scalars(stmt))


def describe(session: Session, event: Event, now: datetime,
             calendar: Calendar | None = None) -> dict[str, Any]:
    """The public view of an event at ``now``, with traffic light and allowed actions."""
    category = cache.category(session, event.category_code)
    assert category is not None
    light = traffic_light(calendar or cache.cached(session, "calendar", Calendar.load),
                          category, event, now)
    return {**event_dict(event, light), "allowed_actions": allowed_actions(event.status)}


def visible_event(session: Session, event_id: int, principal: Principal | None) -> Event:
    """The event, or NotFoundError — the same one — when it lies outside the caller's area."""
    event = get_event(session, event_id)
    if principal is not None and not sees_event(principal, event.grid_code, event.reported_by):
        raise NotFoundError(f"event {event_id} does not exist")
    return event


def intake_view(session: Session, stored: Any, now: datetime,
                principal: Principal | None = None) -> dict[str, Any]:
    """The answer to a report: the event, whether it is new, and the open event it repeats.

    The original is shown only when the caller may see it (a reporter learns the id of
    someone else's report through ``duplicate_of``, nothing more).
    """
    original = stored.original
    if original is not None and principal is not None and not sees_event(
            principal, original.grid_code, original.reported_by):
        original = None
    return {"event": describe(session, stored.event, now), "created": stored.created,
            "original": describe(session, original, now) if original is not None else None}


def event_view(session: Session, event_id: int, now: datetime,
               principal: Principal | None = None) -> dict[str, Any]:
    """The public view of event ``event_id`` (NotFoundError outside the caller's area)."""
    return describe(session, visible_event(session, event_id, principal), now)


def list_events(session: Session, now: datetime, *, status: str | None = None,
                grid_prefix: str | None = None, queue: str | None = None,
                category: str | None = None, limit: int = 100,
                offset: int = 0, principal: Principal | None = None) -> list[dict[str, Any]]:
    """Events, newest first, filtered by status, area code prefix, queue and category."""
    stmt = select(Event).order_by(Event.id.desc()).limit(limit).offset(offset)
    if principal is not None:
        stmt = stmt.where(event_filter(principal, Event.grid_code, Event.reported_by))
    if status:
        stmt = stmt.where(Event.status == status)
    if grid_prefix:
        stmt = stmt.where(Event.grid_code.startswith(grid_prefix))
    if queue:
        stmt = stmt.where(Event.queue == queue)
    if category:
        stmt = stmt.where(Event.category_code == category)
    calendar = Calendar.load(session)
    return [describe(session, e, now, calendar) for e in session.scalars(stmt)]
