"""The intake fast path answers exactly like the FastAPI route, and never acknowledges
an event that was not stored."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.event_schemas import IntakeOut
from gridmap.events.clock import FixedClock
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

VOLATILE = {"id", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def editor_key(events_engine: Engine) -> str:
    """A valid key of a role the events router does not admit (made before the app starts)."""
    return make_key(events_engine, "gis_editor")


@pytest.fixture(scope="module")
def api(events_engine: Engine, editor_key: str) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(events_engine, FixedClock(MONDAY_10), background=False)) as c:
        c.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        yield c


def _body(point: tuple[str, float, float], category: str) -> dict:
    _, lon, lat = point
    return {"source": "grid_worker", "category": category, "lon": lon, "lat": lat,
            "description": "井盖", "reporter_name": "李四", "reporter_phone": "13912345678"}


def _stable(event: dict) -> dict:
    return {k: v for k, v in event.items() if k not in VOLATILE | {"duplicate_of"}}


@pytest.mark.parametrize("category", ["urban.appearance.exposed_garbage",
                                      "urban.emergency.road_collapse",
                                      "social.neighbour_dispute"])
def test_fast_path_answers_like_the_route(api: TestClient, grid_points, category,
                                          events_db: str) -> None:
    point = grid_points[120]
    fast = api.post("/api/v1/events", json=_body(point, category))
    with psycopg.connect(events_db) as conn:  # so that the second is no duplicate of it
        conn.execute("UPDATE events SET status = 'closed' WHERE id = %s",
                     (fast.json()["event"]["id"],))
    # An Idempotency-Key sends the request through the FastAPI route.
    route = api.post("/api/v1/events", json=_body(point, category),
                     headers={"Idempotency-Key": f"route-{category}"})
    assert fast.status_code == route.status_code == 201, (fast.text, route.text)
    assert fast.headers["content-type"] == "application/json"
    fast_json, route_json = fast.json(), route.json()
    IntakeOut.model_validate(fast_json)
    assert set(fast_json) == set(route_json)
    assert set(fast_json["event"]) == set(route_json["event"])
    assert _stable(fast_json["event"]) == _stable(route_json["event"])
    assert fast_json["event"]["grid_code"] == point[0]


def test_fast_path_authenticates_like_the_route(api: TestClient, editor_key: str,
                                               events_db: str, grid_points) -> None:
    with psycopg.connect(events_db) as conn:
        before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    body = _body(grid_points[5], "urban.appearance.exposed_garbage")
    anonymous = api.post("/api/v1/events", json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    denied = api.post("/api/v1/events", json=body,
                      headers={"Authorization": f"Bearer {editor_key}"})
    assert denied.status_code == 403
    with psycopg.connect(events_db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == before


def test_bad_reports_get_the_route_errors(api: TestClient, grid_points) -> None:
    unknown = api.post("/api/v1/events", json=_body(grid_points[1], "no.such.category"))
    assert unknown.status_code == 422 and "category" in unknown.text
    missing = api.post("/api/v1/events", json={"lon": 1.0})
    assert missing.status_code == 422 and missing.json()["error"] == "InvalidInputError"
    broken = api.post("/api/v1/events", content=b"{not json",
                      headers={"content-type": "application/json"})
    assert broken.status_code == 422


def test_commit_failure_is_503_and_nothing_acknowledged(
    api: TestClient, events_db: str, events_engine: Engine, grid_points, monkeypatch
) -> None:
    """Kill the server connection between the insert and the commit."""
    from sqlalchemy.orm import Session

    with psycopg.connect(events_db) as conn:
        before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    real_commit = Session.commit

    def killed_commit(self: Session) -> None:
        pid = self.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with psycopg.connect(events_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        real_commit(self)

    monkeypatch.setattr(Session, "commit", killed_commit)
    resp = api.post("/api/v1/events", json=_body(grid_points[2],
                                                 "urban.appearance.exposed_garbage"))
    monkeypatch.setattr(Session, "commit", real_commit)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "DatabaseUnavailableError"
    with psycopg.connect(events_db) as conn:
        after = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert after == before
    ok = api.post("/api/v1/events", json=_body(grid_points[2], "urban.appearance.exposed_garbage"))
    assert ok.status_code == 201, "the pool recovers after the killed connection"
