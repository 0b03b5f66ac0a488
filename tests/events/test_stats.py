"""Statistics against hand-computed figures (this module's database holds only these events)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gridmap.events import lifecycle
from gridmap.events.clock import FixedClock
from gridmap.events.intake import Report, create_event
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

WEEK = {"from": "2026-11-23T00:00:00+08:00", "to": "2026-11-30T00:00:00+08:00"}


def _new(session: Session, clock: FixedClock, point, category: str) -> int:
    _, lon, lat = point
    event = create_event(session, Report(source="hotline", category=category, lon=lon, lat=lat),
                         now=clock.now()).event
    session.commit()
    return event.id


def _do(session: Session, clock: FixedClock, eid: int, *steps: str, **kw: object) -> None:
    roles = {"accept": "operator", "reject": "operator", "dispatch": "operator",
             "start": "grid_worker", "resolve": "grid_worker", "verify": "operator",
             "fail_verification": "operator", "close": "operator", "rate": "reporter"}
    for step in steps:
        lifecycle.transition(session, eid, step, now=clock.now(), actor="t", role=roles[step],
                             **(kw if step == "rate" else {}))
    session.commit()


@pytest.fixture(scope="module")
def scenario(events_engine: Engine, grid_points) -> Iterator[tuple[str, str, FixedClock]]:
    """Two streets; five events this week, one last week. See the test for the figures."""
    a = grid_points[0]
    b = next(p for p in grid_points if p[0][:9] != a[0][:9])
    session = sessionmaker(bind=events_engine, expire_on_commit=False)()
    clock = FixedClock(MONDAY_10 - timedelta(days=1))
    _new(session, clock, a, "urban.appearance.exposed_garbage")  # last week: outside
    clock.set(MONDAY_10)
    e1 = _new(session, clock, a, "urban.appearance.exposed_garbage")
    e2 = _new(session, clock, a, "urban.construction.noise")
    e3 = _new(session, clock, b, "urban.appearance.exposed_garbage")
    e4 = _new(session, clock, b, "urban.street_order.illegal_parking")
    e5 = _new(session, clock, b, "urban.construction.noise")
    _do(session, clock, e1, "accept", "dispatch", "start")
    _do(session, clock, e2, "accept", "dispatch", "start", "resolve", "fail_verification")
    _do(session, clock, e3, "accept", "dispatch")
    _do(session, clock, e5, "reject")
    clock.advance(hours=2)  # Monday 12:00: e1 done in 2 h, on time
    _do(session, clock, e1, "resolve", "verify", "close")
    _do(session, clock, e1, "rate", rating=5)
    clock.advance(hours=46)  # Wednesday 10:00: e2 done in 48 h, past Tuesday 11:00
    _do(session, clock, e2, "start", "resolve", "verify", "close")
    _do(session, clock, e2, "rate", rating=3)
    clock.advance(days=1)  # Thursday 10:00: e3 overdue, e4 never accepted
    assert e4
    session.close()
    yield a[0][:9], b[0][:9], clock


@pytest.fixture(scope="module")
def api(events_engine: Engine, scenario) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(events_engine, scenario[2], background=False)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        yield client


def test_totals_match_hand_computed(api: TestClient) -> None:
    resp = api.get("/api/v1/stats", params={**WEEK, "level": "street"})
    assert resp.status_code == 200, resp.text
    total = resp.json()["total"]
    assert total["reported"] == 5 and total["accepted"] == 3 and total["closed"] == 2
    assert total["closure_rate"] == round(2 / 3, 4)
    assert total["on_time_closure_rate"] == 0.5
    assert total["rework_rate"] == round(1 / 3, 4)
    assert total["mean_handling_hours"] == 25.0
    assert total["overdue_now"] == 1
    assert total["satisfaction"] == 4.0


def test_by_area_and_category(api: TestClient, scenario) -> None:
    street_a, street_b, _ = scenario
    body = api.get("/api/v1/stats", params={**WEEK, "level": "street"}).json()
    areas = {r["area"]: r for r in body["by_area"]}
    assert areas[street_a]["reported"] == 2 and areas[street_a]["closed"] == 2
    assert areas[street_a]["on_time_closure_rate"] == 0.5
    assert areas[street_b]["reported"] == 3 and areas[street_b]["accepted"] == 1
    assert areas[street_b]["overdue_now"] == 1 and areas[street_b]["closure_rate"] == 0.0
    cats = {r["category"]: r for r in body["by_category"]}
    assert cats["urban.construction.noise"]["reported"] == 2
    assert cats["urban.construction.noise"]["reworked"] == 1
    assert cats["urban.appearance.exposed_garbage"]["closed"] == 1


def test_scoped_to_an_area(api: TestClient, scenario) -> None:
    street_a, _, _ = scenario
    body = api.get("/api/v1/stats", params={**WEEK, "level": "grid", "code": street_a}).json()
    assert body["total"]["reported"] == 2
    assert all(r["area"].startswith(street_a) and len(r["area"]) == 15 for r in body["by_area"])


def test_csv(api: TestClient) -> None:
    resp = api.get("/api/v1/stats", params={**WEEK, "level": "district", "format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert rows[0]["scope"] == "total" and rows[0]["reported"] == "5"
    assert {r["scope"] for r in rows} == {"total", "area", "category"}


@pytest.mark.parametrize("params", [
    {"level": "galaxy"}, {"level": "street", "code": "abc"},
    {"level": "community", "code": "500106001002003"},
    {"level": "street", "from": "2026-12-01T00:00:00+08:00"},
])
def test_bad_parameters_are_422(api: TestClient, params: dict) -> None:
    resp = api.get("/api/v1/stats", params={**WEEK, **params})
    assert resp.status_code == 422, resp.text
