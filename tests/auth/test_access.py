"""Authentication, roles, area scope on every path, masking and the audit log."""

from __future__ import annotations

import gzip

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from gridmap.auth import store
from gridmap.db.engine import session_scope
from gridmap.models import ApiKey
from tests.auth.conftest import Street
from tests.conftest import interior_points


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_protected_endpoints_need_credentials(anon_client: TestClient, street_a: Street) -> None:
    assert anon_client.get("/healthz").status_code == 200
    for path in ("/api/v1/areas?q=5", f"/api/v1/areas/{street_a.code}",
                 f"/api/v1/persons/{street_a.person_id}", "/ogc/collections/grids/items",
                 "/tiles/grids/12/0/0.mvt", "/api/v1/layers/grid", "/api/v1/audit",
                 "/api/v1/lookup?lon=106.5&lat=29.5", "/map/config.json"):  # fmt: skip
        response = anon_client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "AuthenticationError"
        assert response.headers["www-authenticate"] == "Bearer"
    bad = anon_client.get("/api/v1/areas?q=5", headers={"Authorization": "Bearer gmk_nope"})
    assert bad.status_code == 401


def test_revoked_key_stops_working_and_last_use_is_recorded(
    anon_client: TestClient, city_engine: Engine
) -> None:
    with session_scope(city_engine) as session:
        key = store.create_key(session, "revocable", "system")
    headers = {"X-API-Key": key.secret}
    cache = anon_client.app.state.principals  # type: ignore[attr-defined]
    cache.invalidate()
    assert anon_client.get("/api/v1/areas?q=5", headers=headers).status_code == 200
    with session_scope(city_engine) as session:
        store.revoke_key(session, key.id)
    cache.invalidate()  # what auth_cache_ttl_s does on its own after 2 s
    assert anon_client.get("/api/v1/areas?q=5", headers=headers).status_code == 401
    with session_scope(city_engine) as session:
        row = session.scalar(select(ApiKey).where(ApiKey.id == key.id))
        assert row is not None and row.last_used_at is not None
        assert row.key_hash != key.secret and key.secret not in row.prefix + row.key_hash


def test_login_session_and_disable(anon_client: TestClient, city_engine: Engine) -> None:
    with session_scope(city_engine) as session:
        store.add_user(session, "li.na", "correct horse battery", "operator", "500000")
    wrong = anon_client.post("/api/v1/auth/login",
                             json={"username": "li.na", "password": "wrong password"})
    assert wrong.status_code == 401
    ok = anon_client.post("/api/v1/auth/login",
                          json={"username": "li.na", "password": "correct horse battery"})
    assert ok.status_code == 200, ok.text
    token = ok.json()["token"]
    assert ok.json()["principal"]["role"] == "operator"
    me = anon_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == "li.na"
    anon_client.cookies.clear()
    with session_scope(city_engine) as session:
        store.disable_user(session, "li.na")
    anon_client.app.state.principals.invalidate()  # type: ignore[attr-defined]
    me = anon_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    me = anon_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert me.status_code == 401


@pytest.mark.parametrize(("role", "path", "status"), [
    ("reporter", "/api/v1/imports/1", 403),
    ("reporter", "/api/v1/persons/1", 403),
    ("system", "/api/v1/persons/1", 403),
    ("operator", "/api/v1/audit", 403),
    ("system", "/api/v1/lookup?lon=106.5&lat=29.5", 200),
    ("reporter", "/api/v1/lookup?lon=106.5&lat=29.5", 403),
    ("gis_editor", "/api/v1/imports/999999", 404),
])  # fmt: skip
def test_roles(anon_client: TestClient, as_role, role: str, path: str, status: int) -> None:  # type: ignore[no-untyped-def]
    area = "500000" if role == "operator" else None
    response = anon_client.get(path, headers=as_role(role, area))
    assert response.status_code == status, response.text


def test_operator_sees_only_their_street(  # type: ignore[no-untyped-def]
    anon_client: TestClient, client: TestClient, as_role, street_a: Street, street_b: Street
) -> None:
    h = as_role("operator", street_a.code)
    get = lambda path, **kw: anon_client.get(path, headers=h, **kw)  # noqa: E731
    # Their own street works.
    assert get(f"/api/v1/areas/{street_a.grid}").status_code == 200
    assert get(f"/api/v1/grids/{street_a.grid}/residents").status_code == 200
    assert get(f"/api/v1/persons/{street_a.person_id}").status_code == 200
    # Every endpoint on the other street: 404, the same answer as for a missing record.
    for path in (f"/api/v1/areas/{street_b.grid}", f"/api/v1/areas/{street_b.code}",
                 f"/api/v1/areas/{street_b.code}/children",
                 f"/api/v1/areas/{street_b.grid}/geometry",
                 f"/api/v1/grids/{street_b.grid}/profile",
                 f"/api/v1/grids/{street_b.grid}/residents",
                 f"/api/v1/persons/{street_b.person_id}",
                 f"/ogc/collections/grids/items/{street_b.grid}"):  # fmt: skip
        response = get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "NotFoundError"
    missing = get("/api/v1/persons/2000000000")
    assert missing.json()["message"].replace("2000000000", "N") == get(
        f"/api/v1/persons/{street_b.person_id}").json()["message"].replace(
        str(street_b.person_id), "N")  # fmt: skip
    # Search, OGC items, exports and tiles only carry the caller's street.
    hits = get("/api/v1/areas", params={"q": street_b.code[:6], "limit": 100}).json()
    assert hits and all(hit["code"].startswith(street_a.code) for hit in hits)
    items = get("/ogc/collections/grids/items", params={"limit": 1000}).json()["features"]
    assert items and {f["id"][:9] for f in items} == {street_a.code}
    buildings = get("/ogc/collections/buildings/items", params={"limit": 1000}).json()
    assert {f["properties"]["grid_code"][:9] for f in buildings["features"]} == {street_a.code}
    export = get("/api/v1/layers/grid").json()["features"]
    assert export and {f["properties"]["code"][:9] for f in export} == {street_a.code}
    box = client.get(f"/api/v1/areas/{street_b.grid}").json()["bbox"]
    x, y = _tile_of((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 14)
    tile = get(f"/tiles/grids/14/{x}/{y}.mvt")
    assert tile.status_code == 200
    body = gzip.decompress(tile.content) if tile.content[:2] == b"\x1f\x8b" else tile.content
    codes = {f["properties"]["code"] for f in
             mapbox_vector_tile.decode(body).get("grids", {}).get("features", [])}
    assert street_b.grid not in codes
    assert all(c.startswith(street_a.code) for c in codes)
    admin_tile = client.get(f"/tiles/grids/14/{x}/{y}.mvt")
    admin_codes = {f["properties"]["code"] for f in
                   mapbox_vector_tile.decode(admin_tile.content)["grids"]["features"]}
    assert street_b.grid in admin_codes  # the same tile, unscoped, does carry it


def test_grid_worker_sees_own_grids_only(
    anon_client: TestClient, as_role, street_a: Street, street_b: Street  # type: ignore[no-untyped-def]
) -> None:
    h = as_role("grid_worker", worker_code=street_a.worker_code)
    own = anon_client.get(f"/api/v1/grids/{street_a.grid}/residents", headers=h)
    assert own.status_code == 200 and own.json()["total"] > 0
    person = own.json()["residents"][0]
    assert "*" in person["id_number"] and "*" not in (person["phone"] or "")
    other = anon_client.get(f"/api/v1/persons/{street_b.person_id}", headers=h)
    assert other.status_code == 404


def test_masking_by_role(client: TestClient, anon_client: TestClient, as_role,  # type: ignore[no-untyped-def]
                         street_a: Street) -> None:
    full = client.get(f"/api/v1/persons/{street_a.person_id}").json()
    assert "*" not in full["id_number"] and len(full["id_number"]) == 18
    masked = anon_client.get(f"/api/v1/persons/{street_a.person_id}",
                             headers=as_role("operator", street_a.code)).json()
    assert masked["id_number"] == full["id_number"][:3] + "*" * 11 + full["id_number"][-4:]
    if full["phone"]:
        assert masked["phone"] == full["phone"][:3] + "****" + full["phone"][-4:]


def test_person_reads_are_audited(client: TestClient, anon_client: TestClient, as_role,  # type: ignore[no-untyped-def]
                                  street_a: Street) -> None:
    headers = as_role("operator", street_a.code)
    anon_client.get(f"/api/v1/persons/{street_a.person_id}", headers=headers)
    entries = client.get("/api/v1/audit", params={
        "resource": "person", "record_id": str(street_a.person_id)}).json()
    assert any(e["role"] == "operator" and e["action"] == "read" for e in entries)
    listed = client.get(f"/api/v1/grids/{street_a.grid}/residents", params={"limit": 5}).json()
    for person in listed["residents"]:
        trail = client.get("/api/v1/audit", params={"resource": "person",
                                                    "record_id": str(person["id"])}).json()
        assert trail, person["id"]


def test_lookup_fast_path_authenticates_like_the_route(
    anon_client: TestClient, as_role  # type: ignore[no-untyped-def]
) -> None:
    path = "/api/v1/lookup?lon=106.5&lat=29.5"
    assert anon_client.get(path).status_code == 401
    assert anon_client.get(path, headers={"X-API-Key": "gmk_forged"}).status_code == 401
    assert anon_client.get(path, headers=as_role("reporter")).status_code == 403
    system = anon_client.get(path, headers=as_role("system"))
    assert system.status_code == 200 and "query" in system.json()


def test_lookup_answers_an_operator_only_inside_their_street(
    anon_client: TestClient, city_db: str, as_role, street_a: Street,  # type: ignore[no-untyped-def]
    street_b: Street
) -> None:
    h = as_role("operator", street_a.code)
    points = {code: (x, y) for code, x, y in interior_points(city_db)}
    for grid, visible in ((street_a.grid, True), (street_b.grid, False)):
        lon, lat = points[grid]
        # The plain query takes the fast path; ``snap`` sends it through the FastAPI route.
        for extra in ({}, {"snap": 1}):
            body = anon_client.get("/api/v1/lookup", headers=h,
                                   params={"lon": lon, "lat": lat, **extra}).json()
            if visible:
                assert body["grid"]["code"] == grid, extra
            else:
                assert body["grid"] is None and body["workers"] == [], (extra, body)
                assert street_b.code not in str(body)
        system = anon_client.get("/api/v1/lookup", headers=as_role("system"),
                                 params={"lon": lon, "lat": lat}).json()
        assert system["grid"]["code"] == grid  # city-wide callers see every grid
    batch = anon_client.post("/api/v1/lookup", headers=h, json={"points": [[lon, lat]]})
    assert batch.status_code == 403 and "city-wide" in batch.json()["message"]


def test_tile_fast_path_never_serves_a_cached_tile_without_auth_or_across_scopes(
    anon_client: TestClient, client: TestClient, as_role, street_a: Street,  # type: ignore[no-untyped-def]
    street_b: Street,
) -> None:
    box = client.get(f"/api/v1/areas/{street_b.grid}").json()["bbox"]
    x, y = _tile_of((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 14)
    path = f"/tiles/grids/14/{x}/{y}.mvt"
    assert client.get(path).status_code == 200 and client.get(path).status_code == 200  # warm
    assert anon_client.get(path).status_code == 401
    scoped = anon_client.get(path, headers=as_role("operator", street_a.code))
    codes = {f["properties"]["code"] for f in
             mapbox_vector_tile.decode(scoped.content).get("grids", {}).get("features", [])}
    assert street_b.grid not in codes
    assert scoped.headers["cache-control"].startswith("private")
