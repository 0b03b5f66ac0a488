"""Migration 0002_events matches gridmap/models/events.py and seeds the data tables."""

from __future__ import annotations

import psycopg

from tests.conftest import schema_diff

EVENT_TABLES = {"event_categories", "work_periods", "events", "event_transitions",
                "event_photos", "devices", "sensor_rules", "webhooks", "webhook_deliveries"}


def test_models_and_migration_agree(events_db: str) -> None:
    assert schema_diff(events_db, EVENT_TABLES) == []


def test_seeds(events_db: str) -> None:
    with psycopg.connect(events_db) as conn:
        leaves = conn.execute("SELECT count(*) FROM event_categories WHERE leaf").fetchone()
        periods = conn.execute("SELECT count(*) FROM work_periods").fetchone()
        rules = conn.execute("SELECT name FROM sensor_rules ORDER BY id").fetchall()
    assert leaves and leaves[0] >= 20
    assert periods == (10,)
    assert [r[0] for r in rules] == ["door silent 24h, elderly living alone", "smoke alarm",
                                     "no water use 12h"]
