"""Migration 0002_events matches gridmap/models/events.py and seeds the data tables."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gridmap.db.engine import sqlalchemy_url
from gridmap.models import Base

EVENT_TABLES = {"event_categories", "work_periods", "events", "event_transitions",
                "event_photos", "devices", "sensor_rules", "webhooks", "webhook_deliveries"}


def _ours(obj, name, type_, _reflected, _compare_to) -> bool:  # type: ignore[no-untyped-def]
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in EVENT_TABLES


def test_models_and_migration_agree(events_db: str) -> None:
    engine = create_engine(sqlalchemy_url(events_db))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _ours,
                                                     "compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_seeds(events_db: str) -> None:
    with psycopg.connect(events_db) as conn:
        leaves = conn.execute("SELECT count(*) FROM event_categories WHERE leaf").fetchone()
        periods = conn.execute("SELECT count(*) FROM work_periods").fetchone()
        rules = conn.execute("SELECT name FROM sensor_rules ORDER BY id").fetchall()
    assert leaves and leaves[0] >= 20
    assert periods == (10,)
    assert [r[0] for r in rules] == ["door silent 24h, elderly living alone", "smoke alarm",
                                     "no water use 12h"]
