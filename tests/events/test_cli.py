"""``gridmap events escalate`` against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy.orm import Session

from gridmap.events import lifecycle
from gridmap.events.clock import FixedClock
from gridmap.events.intake import Report, create_event
from gridmap.models import Event


def test_escalate_command(session: Session, clock: FixedClock, grid_points, events_db) -> None:
    _, lon, lat = grid_points[150]
    event = create_event(session, Report(source="hotline", category="urban.construction.noise",
                                         lon=lon, lat=lat), now=clock.now()).event
    lifecycle.apply(session, event, "accept", now=clock.now(), actor="op", role="operator")
    session.commit()
    later = (clock.now() + timedelta(days=7)).isoformat()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": events_db}
    out = subprocess.run([sys.executable, "-m", "gridmap", "events", "escalate", "--at", later],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "escalated" in out.stdout and not out.stdout.startswith("escalated 0 ")
    session.expire_all()
    assert session.get(Event, event.id).escalation_level == "community"
