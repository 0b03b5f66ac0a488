"""Events and work orders: categories, calendar, events, audit, photos, sensors, webhooks.

Revision ID: 0002_events
Revises: 0003_maplayers
Create Date: 2026-11-22
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

from gridmap.events.catalog import EVENT_CATEGORIES, SENSOR_RULES, WORK_PERIODS

revision = "0002_events"
down_revision = "0003_maplayers"
branch_labels = None
depends_on = None

TABLES = (
    "event_transitions",
    "event_photos",
    "sensor_rules",
    "events",
    "devices",
    "webhook_deliveries",
    "event_categories",
    "work_periods",
    "webhooks",
)


def upgrade() -> None:
    _create_tables()
    _seed()


def _create_tables() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "work_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start", sa.Time(), nullable=False),
        sa.Column("end", sa.Time(), nullable=False),
        sa.CheckConstraint('"end" > start', name=op.f("ck_work_periods_period_order")),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_work_periods_weekday_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_periods")),
    )
    op.create_table(
        "event_categories",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("leaf", sa.Boolean(), nullable=False),
        sa.Column("affair_class", sa.String(length=16), nullable=False),
        sa.Column("department_code", sa.String(length=32), nullable=True),
        sa.Column("facility_major", sa.String(length=2), nullable=True),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("deadline_hours", sa.Float(), nullable=False),
        sa.Column("round_the_clock", sa.Boolean(), nullable=False),
        sa.Column("auto_accept", sa.Boolean(), nullable=False),
        sa.Column("duplicate_radius_m", sa.Float(), nullable=False),
        sa.Column("duplicate_window_hours", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "affair_class IN ('official','family','collaborative')",
            name=op.f("ck_event_categories_affair_known"),
        ),
        sa.CheckConstraint(
            "kind IN ('urban','component','social')", name=op.f("ck_event_categories_kind_known")
        ),
        sa.CheckConstraint(
            "priority IN ('low','normal','high','urgent')",
            name=op.f("ck_event_categories_priority_known"),
        ),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
            name=op.f("fk_event_categories_department_code_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["event_categories.code"],
            name=op.f("fk_event_categories_parent_code_event_categories"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_event_categories")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("facility_code", sa.String(length=16), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "household_id IS NOT NULL OR facility_code IS NOT NULL",
            name=op.f("ck_devices_registered_somewhere"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_devices_household_id_households"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("affair_class", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("suspended_from", sa.String(length=16), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reporter_name", sa.Text(), nullable=True),
        sa.Column("reporter_phone", sa.String(length=32), nullable=True),
        sa.Column("reporter_email", sa.Text(), nullable=True),
        sa.Column("facility_code", sa.String(length=16), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("media_urls", JSONB(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("worker_code", sa.String(length=32), nullable=True),
        sa.Column("department_code", sa.String(length=32), nullable=True),
        sa.Column("handler_level", sa.String(length=16), nullable=False),
        sa.Column("assignment_reason", sa.Text(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("escalation_level", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column("duplicate_of", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("token", sa.String(length=64), nullable=True),
        sa.Column("satisfaction", sa.SmallInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "source IN ('resident','grid_worker','sensor','hotline','external')",
            name=op.f("ck_events_source_known"),
        ),
        sa.CheckConstraint(
            "status IN ('reported','accepted','rejected','dispatched','in_progress',"
            "'resolved','verified','closed','suspended')",
            name=op.f("ck_events_status_known"),
        ),
        sa.CheckConstraint(
            "lon BETWEEN -180 AND 180 AND lat BETWEEN -90 AND 90", name=op.f("ck_events_lonlat")
        ),
        sa.CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name=op.f("ck_events_rating")
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["event_categories.code"],
            name=op.f("fk_events_category_code_event_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["events.id"], name=op.f("fk_events_duplicate_of_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_events_idempotency_key")),
        sa.UniqueConstraint("token", name=op.f("uq_events_token")),
    )
    op.create_index(
        "ix_events_category_created", "events", ["category_code", "created_at"], unique=False
    )
    op.create_index("ix_events_deadline_open", "events", ["deadline"], unique=False)
    op.create_index("ix_events_geom", "events", ["geom"], unique=False, postgresql_using="gist")
    op.create_index("ix_events_grid_code", "events", ["grid_code"], unique=False)
    op.create_index("ix_events_status", "events", ["status"], unique=False)
    op.create_table(
        "sensor_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=True),
        sa.Column("match", sa.Text(), nullable=True),
        sa.Column("silence_hours", sa.Float(), nullable=True),
        sa.Column("care_tag", sa.String(length=32), nullable=True),
        sa.Column("category_code", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "trigger IN ('value','silence')", name=op.f("ck_sensor_rules_trigger_known")
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["event_categories.code"],
            name=op.f("fk_sensor_rules_category_code_event_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_sensor_rules_name")),
    )
    op.create_table(
        "event_photos",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_event_photos_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_photos")),
    )
    op.create_index(op.f("ix_event_photos_event_id"), "event_photos", ["event_id"], unique=False)
    op.create_table(
        "event_transitions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_event_transitions_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_transitions")),
    )
    op.create_index(
        op.f("ix_event_transitions_event_id"), "event_transitions", ["event_id"], unique=False
    )


def _seed() -> None:
    categories = sa.table("event_categories", *(sa.column(f) for f in EVENT_CATEGORIES[0]._fields))
    op.bulk_insert(categories, [c._asdict() for c in EVENT_CATEGORIES])
    periods = sa.table("work_periods", sa.column("weekday"), sa.column("start"), sa.column("end"))
    op.bulk_insert(
        periods,
        [
            {"weekday": d, "start": dt.time.fromisoformat(s), "end": dt.time.fromisoformat(e)}
            for d, s, e in WORK_PERIODS
        ],
    )
    rules = sa.table("sensor_rules", *(sa.column(f) for f in SENSOR_RULES[0]._fields))
    op.bulk_insert(rules, [r._asdict() for r in SENSOR_RULES])


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
