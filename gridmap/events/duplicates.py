"""Duplicate reports: same category, within the category's radius and time window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import orjson
from geoalchemy2 import Geography
from sqlalchemy import cast, func, select, text
from sqlalchemy.orm import Session

from gridmap.models import Event, EventCategory

CLOSED = ("closed", "rejected")


def _original_query(what: Any, category: EventCategory, lon: float, lat: float,
                    now: datetime) -> Any:
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    return (
        select(what)
        .where(
            Event.category_code == category.code,
            Event.status.not_in(CLOSED),
            Event.duplicate_of.is_(None),
            Event.created_at >= now - timedelta(hours=category.duplicate_window_hours),
            Event.created_at <= now,
            func.ST_DWithin(cast(Event.geom, Geography), cast(point, Geography),
                            category.duplicate_radius_m),
        )
        .order_by(Event.created_at, Event.id)
        .limit(1)
    )


def find_original(
    session: Session, category: EventCategory, lon: float, lat: float, now: datetime,
    exclude_id: int | None = None,
) -> Event | None:
    """The earliest open event of ``category`` within its radius and window, if any."""
    if category.duplicate_radius_m <= 0 or category.duplicate_window_hours <= 0:
        return None
    stmt = _original_query(Event, category, lon, lat, now)
    if exclude_id is not None:
        stmt = stmt.where(Event.id != exclude_id)
    return session.scalar(stmt)


_ROWS_QUERY = text(resources.files("gridmap.events").joinpath("duplicates.sql").read_text())
_METRES_PER_DEGREE = 111_320.0


def find_original_rows(
    session: Session, reports: Sequence[tuple[EventCategory, float, float, datetime]]
) -> list[Any | None]:
    """:func:`find_original` for many (category, lon, lat, now) at once, as plain rows.

    One prepared text statement for all of them: building the SQLAlchemy expression per
    report cost more CPU than running it.
    """
    out: list[Any | None] = [None] * len(reports)
    asked: list[dict[str, Any]] = []
    for i, (category, lon, lat, now) in enumerate(reports):
        if category.duplicate_radius_m <= 0 or category.duplicate_window_hours <= 0:
            continue
        # Degrees of longitude shrink with cos(lat); the slack keeps the box a superset.
        shrink = max(math.cos(math.radians(min(abs(lat), 89.0))), 0.01)
        asked.append({
            "n": i, "category": category.code, "lon": lon, "lat": lat, "now": now,
            "since": now - timedelta(hours=category.duplicate_window_hours),
            "radius_deg": 1.01 * category.duplicate_radius_m / (_METRES_PER_DEGREE * shrink),
            "radius_m": category.duplicate_radius_m,
        })
    if not asked:
        return out
    for row in session.execute(_ROWS_QUERY, {"reports": orjson.dumps(asked).decode(),
                                             "closed": list(CLOSED)}):
        out[row.n] = row
    return out
