"""Periodic work: escalate overdue events, check silent sensors, deliver webhooks."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from gridmap.db.engine import session_scope
from gridmap.events import notify
from gridmap.events.deadlines import escalate_overdue
from gridmap.events.sensors import check_silent_devices

log = logging.getLogger("gridmap.events.scheduler")


def run_deadlines(engine: Engine, clock: Any) -> dict[str, int]:
    """One round of escalation and silent-sensor checks; returns what it did."""
    now = clock.now()
    with session_scope(engine) as session:
        escalated = escalate_overdue(session, now)
    with session_scope(engine) as session:
        opened = check_silent_devices(session, now)
    return {"escalated": len(escalated), "sensor_events": len(opened)}


def run_webhooks(engine: Engine, clock: Any, post: notify.Poster) -> int:
    """One round of webhook deliveries; returns how many succeeded."""
    with session_scope(engine) as session:
        return notify.deliver_due(session, clock.now(), post)
