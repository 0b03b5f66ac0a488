"""The events HTTP API: intake, idempotency, bad input, actions, history, queues."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gridmap.events.clock import FixedClock
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def api_clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture(scope="module")
def api(events_engine: Engine, api_clock: FixedClock) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(events_engine, api_clock, background=False)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        yield client


def _body(point: tuple[str, float, float], **kw: object) -> dict:
    _, lon, lat = point
    return {"source": "resident", "category": "urban.appearance.exposed_garbage",
            "lon": lon, "lat": lat, "description": "垃圾堆", "reporter_phone": "13912345678",
            **kw}


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def test_report_is_assigned_and_masked(api: TestClient, grid_points) -> None:
    resp = api.post("/api/v1/events", json=_body(grid_points[3], photos=[PNG]))
    assert resp.status_code == 201, resp.text
    event = resp.json()["event"]
    assert event["grid_code"] == grid_points[3][0]
    assert event["department_code"] == "sanitation"
    assert event["reporter"]["phone"] == "139****5678"
    assert event["allowed_actions"] == ["accept", "reject"]
    assert "13912345678" not in resp.text


def test_idempotency_key_repeat_returns_original(api: TestClient, grid_points, events_db) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = api.post("/api/v1/events", json=_body(grid_points[4]), headers=headers)
    before = _count(events_db)
    again = api.post("/api/v1/events", json=_body(grid_points[5]), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["event"]["id"] == first.json()["event"]["id"]
    assert again.json()["created"] is False
    assert _count(events_db) == before


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"category": "no.such"}, "no.such"),
        ({"lat": 95.0}, "lat"),
        ({"photos": [base64.b64encode(b"%PDF-1.4 not an image").decode()]}, "not an image"),
        ({"photos": ["***"]}, "base64"),
        ({"crs": "bd09"}, "crs"),
    ],
)
def test_bad_input_is_422_and_stores_nothing(api: TestClient, grid_points, events_db,
                                             change: dict, needle: str) -> None:
    before = _count(events_db)
    resp = api.post("/api/v1/events", json=_body(grid_points[6], **change))
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["message"]
    assert _count(events_db) == before


def test_oversized_body_is_413(api: TestClient, grid_points, events_db) -> None:
    before = _count(events_db)
    huge = "A" * (17 * 1024 * 1024)
    resp = api.post("/api/v1/events", json=_body(grid_points[6], photos=[huge]))
    assert resp.status_code == 413
    assert "exceeds the limit" in resp.json()["message"]
    assert _count(events_db) == before


def test_actions_enforce_state_and_role(api: TestClient, grid_points, api_clock) -> None:
    eid = api.post("/api/v1/events", json=_body(grid_points[7])).json()["event"]["id"]
    bad = api.post(f"/api/v1/events/{eid}/actions",
                   json={"action": "close", "role": "operator", "actor": "op"})
    assert bad.status_code == 409
    assert bad.json()["details"][0]["allowed"] == ["accept", "reject"]
    assert "allowed: accept, reject" in bad.json()["message"]
    steps = [("accept", "operator"), ("dispatch", "operator"), ("start", "grid_worker"),
             ("resolve", "grid_worker"), ("verify", "operator"), ("close", "operator")]
    for action, role in steps:
        body = {"action": action, "role": role, "actor": f"{role}-7"}
        if action == "resolve":
            body["photos"] = [PNG]
        resp = api.post(f"/api/v1/events/{eid}/actions", json=body)
        assert resp.status_code == 200, resp.text
        api_clock.advance(minutes=10)
    assert resp.json()["status"] == "closed"
    assert resp.json()["traffic_light"] == "green"
    history = api.get(f"/api/v1/events/{eid}/history").json()
    assert [h["action"] for h in history][-6:] == [s[0] for s in steps]
    # An admin key acting for a named person: the audit names both, the key first.
    assert history[-1]["actor"] == "key:test-admin for operator-7"
    assert history[-1]["role"] == "operator"


def test_unknown_event_is_404(api: TestClient) -> None:
    assert api.get("/api/v1/events/999999").status_code == 404


def test_outside_grids_listed_in_command_center_queue(api: TestClient) -> None:
    resp = api.post("/api/v1/events", json={"category": "urban.appearance.exposed_garbage",
                                            "lon": 10.0, "lat": 10.0})
    assert resp.status_code == 201 and resp.json()["event"]["flagged"]
    queue = api.get("/api/v1/events", params={"queue": "command_center"}).json()
    assert resp.json()["event"]["id"] in [e["id"] for e in queue]


def test_categories_and_openapi(api: TestClient) -> None:
    cats = api.get("/api/v1/events/categories").json()
    assert any(c["code"] == "component.manhole_damaged" and c["leaf"] for c in cats)
    ops = {op["operationId"] for p in api.get("/openapi.json").json()["paths"].values()
           for op in p.values()}
    assert {"report_event", "act_on_event", "stream_events", "get_event_stats",
            "open311_services", "open311_post_request"} <= ops


def test_operator_of_another_street_cannot_see_or_touch_an_event(
    api: TestClient, grid_points, events_engine: Engine, api_clock: FixedClock  # type: ignore[no-untyped-def]
) -> None:
    event = api.post("/api/v1/events", json=_body(grid_points[5])).json()["event"]
    street = event["grid_code"][:9]
    other = next(p[0][:9] for p in grid_points if p[0][:9] != street)
    own = {"Authorization": f"Bearer {make_key(events_engine, 'operator', street)}"}
    foreign = {"Authorization": f"Bearer {make_key(events_engine, 'operator', other)}"}
    api.app.state.principals.invalidate()  # type: ignore[attr-defined]
    eid = event["id"]
    assert api.get(f"/api/v1/events/{eid}", headers=own).status_code == 200
    for method, path, body in (("GET", f"/api/v1/events/{eid}", None),
                               ("GET", f"/api/v1/events/{eid}/history", None),
                               ("POST", f"/api/v1/events/{eid}/actions",
                                {"action": "accept", "role": "operator", "actor": "x"})):
        resp = api.request(method, path, headers=foreign, json=body)
        assert resp.status_code == 404, (path, resp.text)
        missing = api.request(method, path.replace(str(eid), "999999999"), headers=foreign,
                              json=body)  # fmt: skip
        assert resp.json()["message"].replace(str(eid), "N") == \
            missing.json()["message"].replace("999999999", "N")
    listed = api.get("/api/v1/events", params={"limit": 1000}, headers=foreign).json()
    assert all(e["grid_code"].startswith(other) for e in listed)
    assert eid in {e["id"] for e in api.get("/api/v1/events", params={"limit": 1000},
                                            headers=own).json()}
    stats = api.get("/api/v1/stats", headers=foreign, params={
        "from": "2020-01-01T00:00:00", "to": "2030-01-01T00:00:00", "level": "street",
        "code": street})  # fmt: skip
    assert stats.status_code == 404


def test_a_failed_commit_is_a_503_and_nothing_is_acknowledged(api: TestClient,
                                                              events_db: str) -> None:
    """Routes commit through the session dependency before the response is sent."""
    failing = """
        CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'commit refused' USING ERRCODE = 'admin_shutdown'; END $$;
        CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON webhooks
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit();
    """
    with psycopg.connect(events_db, autocommit=True) as conn:
        conn.execute(failing)
    try:
        resp = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        assert resp.status_code == 503, resp.text
        with psycopg.connect(events_db) as conn:
            stored = conn.execute("SELECT count(*) FROM webhooks WHERE url LIKE "
                                  "'http://127.0.0.1:9/%'").fetchone()
        assert stored == (0,)
    finally:
        with psycopg.connect(events_db, autocommit=True) as conn:
            conn.execute("DROP TRIGGER fail_at_commit ON webhooks; "
                         "DROP FUNCTION fail_at_commit()")
