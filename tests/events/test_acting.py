"""Who may act on and see events: the caller's own role, reporters' own events (issue 7).

Every request here carries a real API key of the role under test; nothing in a request
body can widen what the caller may do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gridmap.events.clock import FixedClock
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

GARBAGE = "urban.appearance.exposed_garbage"


@pytest.fixture(scope="module")
def api(events_engine: Engine) -> Iterator[TestClient]:
    from api.main import create_app

    with TestClient(create_app(events_engine, FixedClock(MONDAY_10), background=False)) as c:
        yield c


def _auth(engine: Engine, api: TestClient, role: str, area: str | None = None,
          worker: str | None = None) -> dict[str, str]:
    key = make_key(engine, role, area, worker)
    api.app.state.principals.invalidate()  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def _report(api: TestClient, headers: dict[str, str], point: tuple[str, float, float],
            **extra: Any) -> dict[str, Any]:
    body = {"category": GARBAGE, "lon": point[1], "lat": point[2], **extra}
    resp = api.post("/api/v1/events", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["event"]  # type: ignore[no-any-return]


def _act(api: TestClient, headers: dict[str, str], eid: int, action: str,
         **extra: Any) -> Any:
    return api.post(f"/api/v1/events/{eid}/actions", json={"action": action, **extra},
                    headers=headers)


def _stored_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]


def test_actions_are_recorded_as_the_caller_in_the_callers_role(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    admin = _auth(events_engine, api, "admin")
    event = _report(api, admin, grid_points[11])
    eid, street = event["id"], event["grid_code"][:9]
    operator = _auth(events_engine, api, "operator", street)
    worker = _auth(events_engine, api, "grid_worker", worker=event["worker_code"])

    # A grid worker claiming the operator's role is refused, not believed.
    forged = _act(api, worker, eid, "accept", role="operator", actor="the operator")
    assert forged.status_code == 403, forged.text
    assert "may not act as operator" in forged.json()["message"]
    # In their own role the grid worker may not accept either: the state machine says who.
    assert _act(api, worker, eid, "accept").status_code == 409
    # An operator may not sign the audit trail with somebody else's name.
    assert _act(api, operator, eid, "accept", actor="someone else").status_code == 403

    for headers, action in ((operator, "accept"), (operator, "dispatch"), (worker, "start"),
                            (worker, "resolve"), (operator, "verify"), (operator, "close")):
        resp = _act(api, headers, eid, action)
        assert resp.status_code == 200, (action, resp.text)
    history = api.get(f"/api/v1/events/{eid}/history", headers=admin).json()
    done = {h["action"]: (h["actor"], h["role"]) for h in history}
    assert done["accept"] == ("key:test-operator", "operator")
    assert done["start"] == ("key:test-grid_worker", "grid_worker")
    assert done["close"] == ("key:test-operator", "operator")
    assert not any(h["actor"] in ("the operator", "someone else") for h in history)


def test_admin_and_system_keys_may_act_for_someone(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    admin = _auth(events_engine, api, "admin")
    system = _auth(events_engine, api, "system")
    eid = _report(api, admin, grid_points[12])["id"]
    assert _act(api, admin, eid, "accept", role="operator", actor="Wang").status_code == 200
    assert _act(api, system, eid, "dispatch").status_code == 200
    # A department's case system reports its handling as the department, never as operator.
    assert _act(api, system, eid, "start", role="department", actor="Roads").status_code == 200
    assert _act(api, system, eid, "resolve", role="operator").status_code == 403
    history = api.get(f"/api/v1/events/{eid}/history", headers=admin).json()
    steps = {h["action"]: (h["actor"], h["role"]) for h in history}
    assert steps["accept"] == ("key:test-admin for Wang", "operator")
    assert steps["start"] == ("key:test-system for Roads", "department")


def test_reporters_see_only_their_own_events(
    api: TestClient, events_engine: Engine, events_db: str,
    grid_points: list[tuple[str, float, float]]
) -> None:
    alice = _auth(events_engine, api, "reporter")
    bob = _auth(events_engine, api, "reporter")
    admin = _auth(events_engine, api, "admin")
    mine = _report(api, alice, grid_points[20], description="overflowing bin")
    theirs = _report(api, bob, grid_points[40])
    listed = api.get("/api/v1/events", headers=alice).json()
    assert [e["id"] for e in listed] == [mine["id"]]
    assert api.get(f"/api/v1/events/{mine['id']}", headers=alice).status_code == 200
    for path in (f"/api/v1/events/{theirs['id']}", f"/api/v1/events/{theirs['id']}/history"):
        assert api.get(path, headers=alice).status_code == 404
    assert _act(api, alice, theirs["id"], "rate", rating=1).status_code == 404
    # Open311 answers a reporter with their own requests only.
    found = api.get("/open311/v2/requests.json", headers=alice).json()
    assert [r["service_request_id"] for r in found] == [str(mine["id"])]
    assert api.get(f"/open311/v2/requests/{theirs['id']}.json",
                   headers=alice).status_code == 404
    # A reporter files as a resident only; a forged source stores nothing.
    before = _stored_count(events_db)
    resp = api.post("/api/v1/events", headers=alice, json={
        "category": GARBAGE, "lon": grid_points[21][1], "lat": grid_points[21][2],
        "source": "sensor"})
    assert resp.status_code == 403 and "source" in resp.json()["message"]
    assert _stored_count(events_db) == before
    # The life of a report: only the rating is the reporter's, and only on their own event.
    for action in ("accept", "dispatch", "start", "resolve", "verify", "close"):
        assert _act(api, admin, mine["id"], action).status_code == 200
    assert _act(api, alice, mine["id"], "close").status_code == 409
    rated = _act(api, alice, mine["id"], "rate", rating=4)
    assert rated.status_code == 200 and rated.json()["satisfaction"] == 4


def test_idempotency_keys_belong_to_the_caller(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    alice = _auth(events_engine, api, "reporter")
    bob = _auth(events_engine, api, "reporter")
    body = {"category": GARBAGE, "lon": grid_points[30][1], "lat": grid_points[30][2]}
    first = api.post("/api/v1/events", json=body, headers={**alice, "Idempotency-Key": "k"})
    other = api.post("/api/v1/events", json={**body, "lon": grid_points[50][1],
                                              "lat": grid_points[50][2]},
                     headers={**bob, "Idempotency-Key": "k"})
    again = api.post("/api/v1/events", json=body, headers={**alice, "Idempotency-Key": "k"})
    assert first.status_code == 201 and other.status_code == 201, other.text
    assert other.json()["event"]["id"] != first.json()["event"]["id"]
    assert again.status_code == 200
    assert again.json()["event"]["id"] == first.json()["event"]["id"]


def test_a_reporter_is_not_shown_someone_elses_original(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    alice = _auth(events_engine, api, "reporter")
    bob = _auth(events_engine, api, "reporter")
    point = grid_points[60]
    original = _report(api, alice, point, reporter_name="Alice Zhang",
                       reporter_phone="13812345678")
    resp = api.post("/api/v1/events", headers=bob, json={
        "category": GARBAGE, "lon": point[1], "lat": point[2]})
    assert resp.status_code == 201
    assert resp.json()["event"]["duplicate_of"] == original["id"]
    assert resp.json()["original"] is None
    assert "Alice" not in resp.text and "5678" not in resp.text


def test_live_stream_of_a_reporter_carries_only_their_events(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    from gridmap.db.engine import session_scope
    from gridmap.events import notify

    alice_headers = _auth(events_engine, api, "reporter")
    bob_headers = _auth(events_engine, api, "reporter")
    with session_scope(events_engine) as session:
        start = notify.latest_change_id(session)
    mine = _report(api, alice_headers, grid_points[70])
    _report(api, bob_headers, grid_points[80])
    principal = api.app.state.principals.by_key(  # type: ignore[attr-defined]
        alice_headers["Authorization"][7:])
    with session_scope(events_engine) as session:
        changes = notify.changes_since(session, start, principal=principal)
    assert changes and {c["id"] for c in changes} == {mine["id"]}


def test_open311_answers_an_operator_with_their_street_only(
    api: TestClient, events_engine: Engine, grid_points: list[tuple[str, float, float]]
) -> None:
    admin = _auth(events_engine, api, "admin")
    here = _report(api, admin, grid_points[90])
    street = here["grid_code"][:9]
    far_point = next(p for p in grid_points if p[0][:9] != street)
    there = _report(api, admin, far_point)
    operator = _auth(events_engine, api, "operator", street)
    listed = api.get("/open311/v2/requests.json", headers=operator).json()
    ids = {r["service_request_id"] for r in listed}
    assert str(here["id"]) in ids and str(there["id"]) not in ids
    for path in (f"/open311/v2/requests/{there['id']}.json",
                 f"/open311/v2/requests/{there['id']}.xml"):
        assert api.get(path, headers=operator).status_code == 404, path
    assert api.get(f"/open311/v2/requests/{here['id']}.json",
                   headers=operator).status_code == 200
    # Listing by id cannot reach across either.
    by_id = api.get("/open311/v2/requests.json", headers=operator,
                    params={"service_request_id": f"{here['id']},{there['id']}"}).json()
    assert [r["service_request_id"] for r in by_id] == [str(here["id"])]
