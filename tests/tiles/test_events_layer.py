"""The map joined to events: the ``events`` tile layer, ``open_events`` on grids, and the
tile cache invalidated by the events triggers when an event is created, changed or closed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from gridmap.db.engine import make_engine
from gridmap.events.clock import FixedClock
from tests.conftest import interior_points, make_key
from tests.events.conftest import MONDAY_10
from tests.tiles.test_tiles import tile_of

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
PHONE = "13912345678"
EVENT_FIELDS = {"id", "category", "status", "priority", "traffic_light"}
CLOSE_STEPS = [("accept", "operator"), ("dispatch", "operator"), ("start", "grid_worker"),
               ("resolve", "grid_worker"), ("verify", "operator"), ("close", "operator")]


@pytest.fixture(scope="module")
def map_db(city_factory) -> str:  # type: ignore[no-untyped-def]
    """A private copy of the sample city (these tests add events)."""
    return str(city_factory())


@pytest.fixture(scope="module")
def api(map_db: str) -> Iterator[TestClient]:
    from api.main import create_app

    engine = make_engine(map_db)
    key = make_key(engine, "admin")
    app = create_app(engine, FixedClock(MONDAY_10), background=False)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        client.app.state.tile_cache.version_ttl_s = 0.0  # see every version bump at once
        yield client
    engine.dispose()


@pytest.fixture(scope="module")
def grid_points(map_db: str) -> list[tuple[str, float, float]]:
    """(grid code, lon, lat) of an interior point of every grid, by code."""
    return interior_points(map_db)


def report(api: TestClient, point: tuple[str, float, float], **kw: Any) -> dict[str, Any]:
    _, lon, lat = point
    body = {"source": "resident", "category": "urban.appearance.exposed_garbage", "lon": lon,
            "lat": lat, "description": "垃圾堆 near 3 Main St", "address": "幸福路 3 号",
            "reporter_name": "张三", "reporter_phone": PHONE, **kw}
    resp = api.post("/api/v1/events", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()["event"]


def act(api: TestClient, event_id: int, steps: list[tuple[str, str]]) -> None:
    for action, role in steps:
        body: dict[str, Any] = {"action": action, "role": role, "actor": f"{role}-1"}
        if action == "resolve":
            body["photos"] = [PNG]
        resp = api.post(f"/api/v1/events/{event_id}/actions", json=body)
        assert resp.status_code == 200, resp.text


def features(api: TestClient, layer: str, z: int, lon: float, lat: float
             ) -> tuple[list[dict[str, Any]], str, bytes]:
    x, y = tile_of(lon, lat, z)
    resp = api.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
    assert resp.status_code == 200
    decoded = mapbox_vector_tile.decode(resp.content)
    return decoded.get(layer, {}).get("features", []), resp.headers["etag"], resp.content


def open_counts_in_sql(url: str, codes: list[str]) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT grid_code, count(*) FROM events WHERE grid_code = ANY(%s) "
            "AND status NOT IN ('closed', 'rejected') GROUP BY grid_code", (codes,)
        ).fetchall()
    found = {str(c): int(n) for c, n in rows}
    return {code: found.get(code, 0) for code in codes}


def test_events_layer_has_open_events_without_personal_data(api, grid_points, map_db) -> None:
    point = grid_points[10]
    reported = report(api, point)
    accepted = report(api, point, category="urban.appearance.exposed_garbage",
                      description="second report")
    act(api, accepted["id"], CLOSE_STEPS[:1])
    rejected = report(api, point, description="not a real problem")
    act(api, rejected["id"], [("reject", "operator")])
    found, _, body = features(api, "events", 15, point[1], point[2])
    by_id = {f["properties"]["id"]: f for f in found}
    assert reported["id"] in by_id and accepted["id"] in by_id
    assert rejected["id"] not in by_id, "rejected events are not open"
    assert all(f["type"] == "Point" or f["geometry"]["type"] == "Point" for f in found)
    for f in found:
        assert set(f["properties"]) <= EVENT_FIELDS
    props = by_id[accepted["id"]]["properties"]
    assert props["status"] == "accepted" and props["priority"]
    assert props["category"] == "urban.appearance.exposed_garbage"
    assert props["traffic_light"] in ("green", "yellow", "red")
    assert "traffic_light" not in by_id[reported["id"]]["properties"], "no deadline yet"
    for secret in (PHONE.encode(), "张三".encode(), "幸福路".encode(), b"Main St"):
        assert secret not in body
    # Below the layer's minimum zoom the tile is empty.
    assert features(api, "events", 10, point[1], point[2])[0] == []


def test_overdue_event_is_red(api, grid_points, map_db) -> None:
    point = grid_points[20]
    event = report(api, point)
    act(api, event["id"], CLOSE_STEPS[:2])
    with psycopg.connect(map_db) as conn:
        conn.execute("UPDATE events SET deadline = now() - interval '1 hour', "
                     "accepted_at = now() - interval '5 hours' WHERE id = %s", (event["id"],))
    found, _, _ = features(api, "events", 15, point[1], point[2])
    light = {f["properties"]["id"]: f["properties"].get("traffic_light") for f in found}
    assert light[event["id"]] == "red"


def test_grid_open_events_equal_sql_counts(api, grid_points, map_db) -> None:
    for i, point in enumerate(grid_points[30:34]):
        for _ in range(i + 1):
            report(api, point)
    closed = report(api, grid_points[31])
    act(api, closed["id"], CLOSE_STEPS)
    _, lon, lat = grid_points[32]
    found, _, _ = features(api, "grids", 12, lon, lat)
    tile_counts = {f["properties"]["code"]: f["properties"]["open_events"] for f in found}
    assert len(tile_counts) > 4
    assert tile_counts == open_counts_in_sql(map_db, list(tile_counts))
    assert sum(tile_counts.values()) >= 1 + 2 + 3 + 4


def test_tiles_are_invalidated_when_an_event_is_created_and_closed(api, grid_points,
                                                                   map_db) -> None:
    code, lon, lat = grid_points[50]
    events_before, events_etag, _ = features(api, "events", 15, lon, lat)
    grids_before, grids_etag, _ = features(api, "grids", 14, lon, lat)
    assert features(api, "events", 15, lon, lat)[1] == events_etag  # served from the cache
    count_before = {f["properties"]["code"]: f["properties"]["open_events"]
                    for f in grids_before}[code]

    event = report(api, grid_points[50])
    events_now, etag_created, _ = features(api, "events", 15, lon, lat)
    grids_now, grids_etag_created, _ = features(api, "grids", 14, lon, lat)
    assert etag_created != events_etag and grids_etag_created != grids_etag
    assert event["id"] in {f["properties"]["id"] for f in events_now}
    assert event["id"] not in {f["properties"]["id"] for f in events_before}
    counts = {f["properties"]["code"]: f["properties"]["open_events"] for f in grids_now}
    assert counts[code] == count_before + 1

    act(api, event["id"], CLOSE_STEPS)
    events_closed, etag_closed, _ = features(api, "events", 15, lon, lat)
    grids_closed, grids_etag_closed, _ = features(api, "grids", 14, lon, lat)
    assert etag_closed != etag_created and grids_etag_closed != grids_etag_created
    assert event["id"] not in {f["properties"]["id"] for f in events_closed}
    counts = {f["properties"]["code"]: f["properties"]["open_events"] for f in grids_closed}
    assert counts[code] == count_before


def test_one_statement_is_one_invalidation(api, grid_points, map_db) -> None:
    with psycopg.connect(map_db) as conn:
        before = conn.execute("SELECT count(*) FROM layer_changes WHERE layer = 'events'"
                              ).fetchone()[0]
        # Touch many open events in one statement: one change row, not one per event.
        conn.execute("UPDATE events SET priority = 'high' WHERE status NOT IN "
                     "('closed', 'rejected')")
        after = conn.execute("SELECT count(*) FROM layer_changes WHERE layer = 'events'"
                             ).fetchone()[0]
        untouched = conn.execute("UPDATE events SET updated_at = updated_at").rowcount
        last = conn.execute("SELECT count(*) FROM layer_changes WHERE layer = 'events'"
                            ).fetchone()[0]
    assert after == before + 1
    assert untouched > 0 and last == after, "a change the map does not show invalidates nothing"


def test_static_map_shows_open_events(api, grid_points, map_db, tmp_path) -> None:
    from sqlalchemy.orm import Session

    from gridmap.mapview import area_layers, write_area_map

    code = grid_points[60][0]
    community = code[:12]
    opened = report(api, grid_points[60])
    closed = report(api, grid_points[60])
    act(api, closed["id"], CLOSE_STEPS)
    with psycopg.connect(map_db) as conn:
        expected = {int(r[0]) for r in conn.execute(
            "SELECT id FROM events WHERE grid_code LIKE %s "
            "AND status NOT IN ('closed', 'rejected')", (community + "%",))}
    engine = make_engine(map_db)
    try:
        with Session(engine) as session:
            layers = area_layers(session, community)
            html = write_area_map(session, community, tmp_path / "m.html").read_text("utf-8")
    finally:
        engine.dispose()
    events = layers["events"]["features"]
    assert {f["properties"]["id"] for f in events} == expected
    assert opened["id"] in expected and closed["id"] not in expected
    assert all(set(f["properties"]) == {"id", "category", "status", "priority",
                                        "traffic_light", "deadline"} for f in events)
    counts = {f["properties"]["code"]: f["properties"]["open_events"]
              for f in layers["grids"]["features"]}
    assert counts == open_counts_in_sql(map_db, list(counts))
    assert "events (open)" in html
    assert PHONE not in html and "张三" not in html and "幸福路" not in html


def test_a_light_turning_with_time_invalidates_the_events_tiles(api, grid_points,
                                                                 map_db) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from gridmap.events.maplight import invalidate_turned_lights
    from gridmap.layers import layer_versions

    event = report(api, grid_points[70])
    act(api, event["id"], CLOSE_STEPS[:2])
    due = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with psycopg.connect(map_db) as conn:  # yellow at 11:12, red at 12:00
        conn.execute("UPDATE events SET accepted_at = %s, deadline = %s, yellow_at = %s "
                     "WHERE id = %s", (due - timedelta(hours=4), due,
                                       due - timedelta(minutes=48), event["id"]))
    engine = make_engine(map_db)
    try:
        with Session(engine) as session:
            before = layer_versions(session)["events"]
            assert invalidate_turned_lights(session, due - timedelta(minutes=1), due)
            session.commit()
            assert layer_versions(session)["events"] == before + 1
            quiet = due + timedelta(minutes=1), due + timedelta(minutes=30)
            assert not invalidate_turned_lights(session, *quiet)
            assert invalidate_turned_lights(session, due - timedelta(minutes=49),
                                            due - timedelta(minutes=47))  # turned yellow
    finally:
        engine.dispose()


def test_event_outside_every_grid_invalidates_only_the_events_layer(api, map_db) -> None:
    with psycopg.connect(map_db) as conn:
        before = dict(conn.execute("SELECT layer, version FROM layer_versions").fetchall())
    event = report(api, ("", 10.0, 10.0))
    assert event["grid_code"] is None
    with psycopg.connect(map_db) as conn:
        after = dict(conn.execute("SELECT layer, version FROM layer_versions").fetchall())
    assert after["events"] > before["events"] and after["grids"] == before["grids"]


def test_the_tile_light_is_the_api_light_in_working_hours(api, grid_points, map_db) -> None:
    """Tiles and API agree where working hours and wall-clock time disagree."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from gridmap.events.catalog import EVENT_CATEGORIES
    from gridmap.events.deadlines import Calendar

    engine = make_engine(map_db)
    try:
        with Session(engine) as session:
            calendar = Calendar.load(session)
    finally:
        engine.dispose()
    now = datetime.now(UTC)  # the tiles' light uses the database's clock: the real one
    margin = timedelta(minutes=10)  # no light turns while the test runs

    def lights(accepted: datetime, limit: float) -> tuple[str, str] | None:
        deadline = calendar.add_working_hours(accepted, limit)
        working = calendar.add_working_hours(accepted, 0.8 * limit)
        wall = accepted + 0.8 * (deadline - accepted)
        if any(abs(now - t) < margin for t in (deadline, working, wall)) or now > deadline:
            return None
        return ("green" if now < working else "yellow"), ("green" if now < wall else "yellow")

    # One time limit alone leaves ~8% of the week's moments with no acceptance time at
    # which the two lights differ (Monday 17:20 local, for 8 hours); two limits and two
    # minutes past the hour leave none (checked at every 10 minutes of a week).
    limits = {c.code: c.deadline_hours for c in EVENT_CATEGORIES}
    two = ("urban.appearance.exposed_garbage", "urban.advertising.illegal_ad")  # 8 h, 16 h
    candidates = ((category, now - timedelta(hours=h, minutes=m))
                  for category in two for m in (7, 37) for h in range(1, 24 * 8))  # fmt: skip
    category, accepted = next((c, t) for c, t in candidates
                              if (pair := lights(t, limits[c])) and pair[0] != pair[1])  # fmt: skip
    expected = lights(accepted, limits[category])[0]  # type: ignore[index]
    clock = api.app.state.clock
    try:
        clock.set(accepted)
        event = report(api, grid_points[90], category=category)
        act(api, event["id"], CLOSE_STEPS[:1])
    finally:
        clock.set(now)
    assert api.get(f"/api/v1/events/{event['id']}").json()["traffic_light"] == expected
    _, lon, lat = grid_points[90]
    found, _, _ = features(api, "events", 15, lon, lat)
    light = {f["properties"]["id"]: f["properties"].get("traffic_light") for f in found}
    assert light[event["id"]] == expected, "the tile shows the API's working-hours light"


def test_open_events_are_an_ogc_collection(api, grid_points, map_db) -> None:
    """QGIS/GDAL read open events like any layer: same properties and light as the tiles."""
    from tests.conftest import make_key as key_for

    ids = {c["id"] for c in api.get("/ogc/collections").json()["collections"]}
    assert "events" in ids
    code, lon, lat = grid_points[100]
    opened = report(api, grid_points[100])
    act(api, opened["id"], CLOSE_STEPS[:1])
    closed = report(api, grid_points[100], description="closed one")
    act(api, closed["id"], CLOSE_STEPS)
    report(api, next(p for p in grid_points if not p[0].startswith(code[:12])))  # elsewhere
    body = api.get("/ogc/collections/events/items",
                   params={"bbox": f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}",
                           "limit": 1000}).json()
    by_id = {f["id"]: f for f in body["features"]}
    assert str(opened["id"]) in by_id and str(closed["id"]) not in by_id
    feature = by_id[str(opened["id"])]
    assert feature["geometry"]["type"] == "Point"
    assert set(feature["properties"]) == EVENT_FIELDS
    api_light = api.get(f"/api/v1/events/{opened['id']}").json()["traffic_light"]
    found, _, body_bytes = features(api, "events", 15, lon, lat)
    tile_light = {f["properties"]["id"]: f["properties"].get("traffic_light") for f in found}
    assert feature["properties"]["traffic_light"] == api_light == tile_light[opened["id"]]
    assert PHONE not in str(by_id) and "张三" not in str(by_id)
    one = api.get(f"/ogc/collections/events/items/{opened['id']}")
    assert one.status_code == 200 and one.json()["properties"]["id"] == opened["id"]
    for missing in (str(closed["id"]), "12x", "99999999999999999999"):
        assert api.get(f"/ogc/collections/events/items/{missing}").status_code == 404
    with psycopg.connect(map_db) as conn:
        total = conn.execute("SELECT count(*) FROM events WHERE status NOT IN "
                             "('closed', 'rejected')").fetchone()[0]
        other = conn.execute("SELECT count(*) FROM events WHERE status NOT IN "
                             "('closed', 'rejected') AND grid_code LIKE %s",
                             (code[:12] + "%",)).fetchone()[0]
    assert api.get("/ogc/collections/events/items").json()["numberMatched"] == total
    engine = make_engine(map_db)
    try:
        key = key_for(engine, "operator", code[:12])
    finally:
        engine.dispose()
    api.app.state.principals.invalidate()
    scoped = api.get("/ogc/collections/events/items",
                     headers={"Authorization": f"Bearer {key}"}).json()
    assert scoped["numberMatched"] == other < total
    assert all(f["properties"]["id"] for f in scoped["features"])


def test_reporters_see_no_events_in_shared_layers(api, grid_points, map_db) -> None:
    """A reporter sees their own events through the events API, none on the map layers."""
    from tests.conftest import make_key as key_for

    code, lon, lat = grid_points[120]
    opened = report(api, grid_points[120])
    engine = make_engine(map_db)
    try:
        reporter = {"Authorization": f"Bearer {key_for(engine, 'reporter')}"}
    finally:
        engine.dispose()
    api.app.state.principals.invalidate()
    x, y = tile_of(lon, lat, 15)
    admin_tile = mapbox_vector_tile.decode(api.get(f"/tiles/events/15/{x}/{y}.mvt").content)
    assert opened["id"] in {f["properties"]["id"] for f in admin_tile["events"]["features"]}
    tile = api.get(f"/tiles/events/15/{x}/{y}.mvt", headers=reporter)
    assert tile.status_code == 200
    assert not mapbox_vector_tile.decode(tile.content).get("events", {}).get("features")
    items = api.get("/ogc/collections/events/items", headers=reporter).json()
    assert items["numberMatched"] == 0 and items["features"] == []
    assert api.get(f"/ogc/collections/events/items/{opened['id']}",
                   headers=reporter).status_code == 404
    grids = api.get(f"/tiles/grids/15/{x}/{y}.mvt", headers=reporter)
    codes = {f["properties"]["code"]
             for f in mapbox_vector_tile.decode(grids.content)["grids"]["features"]}
    assert code in codes  # the division itself is not hidden from reporters
