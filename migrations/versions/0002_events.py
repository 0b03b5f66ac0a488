"""Events and work orders: categories, calendar, events, audit, photos, sensors, webhooks.

Revision ID: 0002_events
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import datetime as dt

from alembic import op

from gridmap.events.catalog import EVENT_CATEGORIES, SENSOR_RULES, WORK_PERIODS
from gridmap.models.events import (
    Device,
    Event,
    EventCategory,
    EventPhoto,
    EventTransition,
    SensorRule,
    Webhook,
    WebhookDelivery,
    WorkPeriod,
)

revision = "0002_events"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = [
    EventCategory.__table__,
    WorkPeriod.__table__,
    Event.__table__,
    EventTransition.__table__,
    EventPhoto.__table__,
    Device.__table__,
    SensorRule.__table__,
    Webhook.__table__,
    WebhookDelivery.__table__,
]


def upgrade() -> None:
    bind = op.get_bind()
    # The tables are declared once, in gridmap/models/events.py; this revision creates
    # them as declared at revision time (a later change gets its own revision).
    for table in TABLES:
        table.create(bind)
    op.bulk_insert(EventCategory.__table__, [c._asdict() for c in EVENT_CATEGORIES])
    op.bulk_insert(
        WorkPeriod.__table__,
        [
            {"weekday": d, "start": dt.time.fromisoformat(s), "end": dt.time.fromisoformat(e)}
            for d, s, e in WORK_PERIODS
        ],
    )
    op.bulk_insert(SensorRule.__table__, [r._asdict() for r in SENSOR_RULES])


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
