"""Traffic lights on the map change with time alone: tell the tile cache when they do.

The ``events`` tile layer colours open events green → yellow (at ``yellow_at``: 80% of
the time limit used, in working hours, see :func:`gridmap.events.deadlines.yellow_from`)
→ red (past the deadline). No row changes when a light turns, so the
events triggers cannot see it; the scheduler calls :func:`invalidate_turned_lights` each
round with the window since its previous round.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.layers import invalidate

_TURNED = text(
    """
    SELECT min(lon), min(lat), max(lon), max(lat)
    FROM events
    WHERE status NOT IN ('closed', 'rejected')
      AND accepted_at IS NOT NULL AND deadline IS NOT NULL
      AND (deadline > :since AND deadline <= :now
           OR yellow_at > :since AND yellow_at <= :now)
    """
)


def invalidate_turned_lights(session: Session, since: datetime, now: datetime) -> bool:
    """Invalidate the ``events`` tiles where a light turned in (since, now]; True if any."""
    w, s, e, n = session.execute(_TURNED, {"since": since, "now": now}).one()
    if w is None:
        return False
    invalidate(session, ["events"], (w, s, e, n))
    return True
