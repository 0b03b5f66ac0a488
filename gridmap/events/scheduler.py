"""Periodic work: escalate overdue events, check silent sensors, deliver webhooks, move
events stored under a generation just replaced."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg
from sqlalchemy import Engine

from gridmap.db.engine import session_scope
from gridmap.events import notify
from gridmap.events.deadlines import escalate_overdue
from gridmap.events.maplight import invalidate_turned_lights
from gridmap.events.sensors import check_silent_devices
from gridmap.events.settings import get_event_settings
from gridmap.ingest.reassign import reassign_late_events

log = logging.getLogger("gridmap.events.scheduler")


def run_deadlines(engine: Engine, clock: Any, since: datetime | None = None) -> dict[str, int]:
    """One round of escalation, silent-sensor checks, map lights and late re-assignment
    (open events stored under the previous generation just after a new one was
    activated); returns what it did.

    ``since``: the previous round (default: one scheduler interval ago); events tiles
    where a traffic light turned since then are invalidated.
    """
    now = clock.now()
    if since is None:
        since = now - timedelta(seconds=get_event_settings().scheduler_interval_s)
    with session_scope(engine) as session:
        invalidate_turned_lights(session, since, now)
    with session_scope(engine) as session:
        escalated = escalate_overdue(session, now)
    with session_scope(engine) as session:
        opened = check_silent_devices(session, now)
    with engine.begin() as sa_conn:
        late = reassign_late_events(cast("psycopg.Connection[Any]",
                                         sa_conn.connection.driver_connection))  # fmt: skip
    return {"escalated": len(escalated), "sensor_events": len(opened),
            "reassigned": sum(int(n) for _grid, n in late)}


def run_webhooks(engine: Engine, clock: Any, post: notify.Poster) -> int:
    """One round of webhook deliveries; returns how many succeeded."""
    with session_scope(engine) as session:
        return notify.deliver_due(session, clock.now(), post)
