"""Events: ``yellow_at``, when the traffic light turns yellow (working hours).

The ``events`` tile layer computed its light from wall-clock time (80% of the accepted →
deadline span) while the API counted working hours, so the map and the API disagreed
(e.g. over a weekend). The moment is now computed once, in Python, by
``gridmap.events.deadlines.yellow_from`` when an event is accepted, and stored; the tile
SQL and the light-turn invalidation read it. Existing accepted events are backfilled.
``gridmap_traffic_light`` is the rule in SQL (the events tiles and OGC items call it),
the same as ``gridmap.events.deadlines.traffic_light``.

Revision ID: 0010_event_light
Revises: 0009_authversion
Create Date: 2026-11-22
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0010_event_light"
down_revision = "0009_authversion"
branch_labels = None
depends_on = None


LIGHT = """
CREATE FUNCTION gridmap_traffic_light(deadline timestamptz, accepted_at timestamptz,
                                      yellow_at timestamptz, at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN deadline IS NULL OR accepted_at IS NULL THEN NULL
    WHEN at > deadline THEN 'red'
    WHEN at < yellow_at THEN 'green'
    ELSE 'yellow'
  END
$$
"""


def upgrade() -> None:
    op.add_column("events", sa.Column("yellow_at", sa.DateTime(timezone=True)))
    op.execute(LIGHT)
    _backfill()


def _backfill() -> None:
    from gridmap.events.deadlines import Calendar, yellow_from

    bind = op.get_bind()
    calendar = Calendar.load(Session(bind=bind))
    categories = {
        row.code: SimpleNamespace(deadline_hours=row.deadline_hours,
                                  round_the_clock=row.round_the_clock)
        for row in bind.execute(sa.text(
            "SELECT code, deadline_hours, round_the_clock FROM event_categories"))
    }  # fmt: skip
    rows = bind.execute(sa.text(
        "SELECT id, category_code, accepted_at FROM events WHERE accepted_at IS NOT NULL")
    ).all()  # fmt: skip
    updates = [
        {"id": row.id, "yellow_at": yellow_from(calendar, categories[row.category_code],
                                                row.accepted_at)}  # type: ignore[arg-type]
        for row in rows if row.category_code in categories
    ]
    if updates:
        bind.execute(sa.text("UPDATE events SET yellow_at = :yellow_at WHERE id = :id"),
                     updates)
        # Lights on cached events tiles may change colour: invalidate the layer.
        bind.execute(sa.text("SELECT gridmap_invalidate_layers(ARRAY['events'], NULL)"))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS "
               "gridmap_traffic_light(timestamptz, timestamptz, timestamptz, timestamptz)")
    op.drop_column("events", "yellow_at")
