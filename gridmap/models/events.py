"""Events and work orders (事件/工单), their audit trail, photos, and the data that drives them.

Everything that decides how an event is handled is data: the category tree (department,
affair class, deadline, duplicate radius), the working calendar, sensor rules and webhooks.
"""

from __future__ import annotations

from datetime import datetime, time

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base

EVENT_SOURCES = ("resident", "grid_worker", "sensor", "hotline", "external")
AFFAIR_CLASSES = ("official", "family", "collaborative")
EVENT_STATUSES = (
    "reported",
    "accepted",
    "rejected",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "closed",
    "suspended",
)
CLOSED_STATUSES = ("closed", "rejected")
"""Statuses of events that are no longer open (every other status counts as open)."""
OPEN_EVENTS_SQL = "status NOT IN ('closed', 'rejected')"
"""The SQL predicate of an open event (the partial indexes and the map layers use it)."""
ESCALATION_LEVELS = ("grid", "community", "street", "district")


class EventCategory(Base):
    """A node of the event classification tree; leaves are what reports are filed under."""

    __tablename__ = "event_categories"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("event_categories.code"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    leaf: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    affair_class: Mapped[str] = mapped_column(String(16), nullable=False, default="official")
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    facility_major: Mapped[str | None] = mapped_column(String(2))
    priority: Mapped[str] = mapped_column(String(8), nullable=False, default="normal")
    deadline_hours: Mapped[float] = mapped_column(Float, nullable=False, default=16)
    round_the_clock: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    auto_accept: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    duplicate_radius_m: Mapped[float] = mapped_column(Float, nullable=False, default=0)
    duplicate_window_hours: Mapped[float] = mapped_column(Float, nullable=False, default=0)

    __table_args__ = (
        CheckConstraint("kind IN ('urban','component','social')", name="kind_known"),
        CheckConstraint(
            "affair_class IN ('official','family','collaborative')", name="affair_known"
        ),
        CheckConstraint("priority IN ('low','normal','high','urgent')", name="priority_known"),
    )


class WorkPeriod(Base):
    """The working calendar: on ``weekday`` (0 = Monday) work runs from ``start`` to ``end``."""

    __tablename__ = "work_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    start: Mapped[time] = mapped_column(Time, nullable=False)
    end: Mapped[time] = mapped_column(Time, nullable=False)

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint('"end" > start', name="period_order"),
    )


class Event(Base):
    """A reported event and the work order it becomes."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    category_code: Mapped[str] = mapped_column(
        ForeignKey("event_categories.code"), nullable=False
    )
    affair_class: Mapped[str] = mapped_column(String(16), nullable=False)
    priority: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="reported")
    suspended_from: Mapped[str | None] = mapped_column(String(16))
    lon: Mapped[float] = mapped_column(Float, nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    address: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    reporter_name: Mapped[str | None] = mapped_column(Text)
    reporter_phone: Mapped[str | None] = mapped_column(String(32))
    reporter_email: Mapped[str | None] = mapped_column(Text)
    facility_code: Mapped[str | None] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(64))
    household_id: Mapped[int | None] = mapped_column(Integer)
    media_urls: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    generation: Mapped[int | None] = mapped_column(Integer)
    worker_code: Mapped[str | None] = mapped_column(String(32))
    department_code: Mapped[str | None] = mapped_column(String(32))
    handler_level: Mapped[str] = mapped_column(String(16), nullable=False, default="grid")
    assignment_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    flagged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    queue: Mapped[str] = mapped_column(String(32), nullable=False, default="grid")
    escalation_level: Mapped[str] = mapped_column(String(16), nullable=False, default="grid")
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rework_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # The reporting principal (``user:12``, ``key:3``); '' for reports from inside the system.
    reported_by: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    token: Mapped[str | None] = mapped_column(String(64), unique=True)
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    yellow_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the traffic light turns yellow (gridmap.events.deadlines.yellow_from)."""
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "source IN ('resident','grid_worker','sensor','hotline','external')",
            name="source_known",
        ),
        CheckConstraint(
            "status IN ('reported','accepted','rejected','dispatched','in_progress',"
            "'resolved','verified','closed','suspended')",
            name="status_known",
        ),
        CheckConstraint("lon BETWEEN -180 AND 180 AND lat BETWEEN -90 AND 90", name="lonlat"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="rating"),
        Index("ix_events_geom", "geom", postgresql_using="gist"),
        Index("ix_events_grid_code", "grid_code"),
        Index("ix_events_status", "status"),
        Index("ix_events_category_created", "category_code", "created_at"),
        Index("ix_events_deadline_open", "deadline"),
        # Open events on the map (migration 0006_mapevents, with its invalidation triggers).
        Index("ix_events_open_grid", "grid_code", postgresql_where=text(OPEN_EVENTS_SQL)),
        Index("ix_events_open_geom", "geom", postgresql_using="gist",
              postgresql_where=text(OPEN_EVENTS_SQL)),
        # Migration 0008_reporter: keys are unique per caller; a reporter's own events.
        Index("ux_events_caller_idempotency_key", "reported_by", "idempotency_key",
              unique=True, postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_events_reported_by", "reported_by", "id",
              postgresql_where=text("reported_by <> ''")),
    )


class EventTransition(Base):
    """One audited step of an event's life: who did what, when, from which state."""

    __tablename__ = "event_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class EventPhoto(Base):
    """A photo attached at report time or with the handler's feedback."""

    __tablename__ = "event_photos"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    stage: Mapped[str] = mapped_column(String(16), nullable=False, default="report")
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Device(Base):
    """A sensor registered to a household or a facility."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL")
    )
    facility_code: Mapped[str | None] = mapped_column(String(16))
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_alert_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "household_id IS NOT NULL OR facility_code IS NOT NULL", name="registered_somewhere"
        ),
    )


class SensorRule(Base):
    """A rule that turns sensor data (or its absence) into an event.

    ``trigger`` = ``value``: a reading of ``kind`` whose ``field`` equals ``match`` opens an
    event; ``silence``: no activity of ``kind`` for ``silence_hours`` opens one, only in
    households whose residents carry ``care_tag`` (when set).
    """

    __tablename__ = "sensor_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    field: Mapped[str | None] = mapped_column(String(32))
    match: Mapped[str | None] = mapped_column(Text)
    silence_hours: Mapped[float | None] = mapped_column(Float)
    care_tag: Mapped[str | None] = mapped_column(String(32))
    category_code: Mapped[str] = mapped_column(
        ForeignKey("event_categories.code"), nullable=False
    )
    priority: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        CheckConstraint("trigger IN ('value','silence')", name="trigger_known"),
    )


class Webhook(Base):
    """An external system that receives every event change (POSTed JSON)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class WebhookDelivery(Base):
    """Outbox row: one payload for one webhook, retried with back-off until delivered."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    )
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
