"""Events remember who reported them; idempotency keys are per caller.

``reported_by`` is the reporting principal's identity (``user:12``, ``key:3``; empty for
reports made inside the system: sensors, the CLI). It lets a ``reporter`` see their own
events and nobody else's. An ``Idempotency-Key`` was unique across all callers, so a key
reused by another caller returned someone else's event; it is now unique per caller.

Revision ID: 0008_reporter
Revises: 0006_mapevents
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_reporter"
down_revision = "0006_mapevents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("reported_by", sa.Text(), nullable=False,
                                      server_default=""))
    op.drop_constraint("uq_events_idempotency_key", "events", type_="unique")
    op.create_index("ux_events_caller_idempotency_key", "events",
                    ["reported_by", "idempotency_key"], unique=True,
                    postgresql_where=sa.text("idempotency_key IS NOT NULL"))
    op.create_index("ix_events_reported_by", "events", ["reported_by", "id"],
                    postgresql_where=sa.text("reported_by <> ''"))


def downgrade() -> None:
    op.drop_index("ix_events_reported_by", table_name="events")
    op.drop_index("ux_events_caller_idempotency_key", table_name="events")
    op.execute("UPDATE events SET idempotency_key = NULL WHERE id NOT IN ("
               "SELECT min(id) FROM events WHERE idempotency_key IS NOT NULL "
               "GROUP BY idempotency_key)")
    op.create_unique_constraint("uq_events_idempotency_key", "events", ["idempotency_key"])
    op.drop_column("events", "reported_by")
