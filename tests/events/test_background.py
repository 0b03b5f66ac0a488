"""The API's lifespan runs the scheduler: overdue events escalate without anyone asking."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gridmap.events.clock import FixedClock
from gridmap.events.settings import get_event_settings
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10


@pytest.fixture
def fast_scheduler(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GRIDMAP_SCHEDULER_INTERVAL_S", "0.2")
    monkeypatch.setenv("GRIDMAP_WEBHOOK_INTERVAL_S", "0.2")
    get_event_settings.cache_clear()
    yield
    get_event_settings.cache_clear()


def test_lifespan_scheduler_escalates_overdue(fast_scheduler, events_engine: Engine,
                                              grid_points) -> None:
    from api.main import create_app

    clock = FixedClock(MONDAY_10)
    _, lon, lat = grid_points[250]
    with TestClient(create_app(events_engine, clock)) as api:
        api.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        eid = api.post("/api/v1/events", json={"category": "urban.street_order.vending",
                                               "lon": lon, "lat": lat}).json()["event"]["id"]
        api.post(f"/api/v1/events/{eid}/actions",
                 json={"action": "accept", "role": "operator", "actor": "op"})
        assert api.get(f"/api/v1/events/{eid}").json()["escalation_level"] == "grid"
        clock.advance(days=3)  # far past the 4 working-hour limit
        deadline = time.monotonic() + 10
        level = "grid"
        while time.monotonic() < deadline and level == "grid":
            time.sleep(0.1)
            level = api.get(f"/api/v1/events/{eid}").json()["escalation_level"]
        assert level == "community"
        history = api.get(f"/api/v1/events/{eid}/history").json()
        assert any(h["action"] == "escalate" and h["role"] == "system" for h in history)
