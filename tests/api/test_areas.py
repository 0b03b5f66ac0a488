"""Areas, children, geometry and profile endpoints over a real database."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture(scope="module")
def a_grid(city_db: str) -> str:
    with psycopg.connect(city_db) as conn:
        row = conn.execute(
            "SELECT code FROM areas WHERE level = 'grid' ORDER BY code LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_health_reports_postgis(client) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["postgis_version"].startswith("3.")
    assert body["active_generation"] >= 1


def test_area_with_ancestors(client, a_grid: str) -> None:
    body = client.get(f"/api/v1/areas/{a_grid}").json()
    assert body["code"] == a_grid and body["level"] == "grid"
    levels = [a["level"] for a in body["ancestors"]]
    assert levels == ["city", "district", "street", "community"]
    assert [a["code"] for a in body["ancestors"][1:]] == [a_grid[:6], a_grid[:9], a_grid[:12]]
    west, south, east, north = body["bbox"]
    assert west < east and south < north


def test_children_are_ordered_and_nested(client, a_grid: str) -> None:
    community = a_grid[:12]
    children = client.get(f"/api/v1/areas/{community}/children").json()
    codes = [c["code"] for c in children]
    assert a_grid in codes and codes == sorted(codes)
    assert all(c["parent_code"] == community and c["level"] == "grid" for c in children)


def test_geometry_is_geojson(client, a_grid: str) -> None:
    resp = client.get(f"/api/v1/areas/{a_grid}/geometry")
    assert resp.headers["content-type"].startswith("application/geo+json")
    feature = resp.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"]["type"] == "MultiPolygon"


def test_grid_profile_matches_database(client, a_grid: str, city_db: str) -> None:
    body = client.get(f"/api/v1/grids/{a_grid}/profile").json()
    with psycopg.connect(city_db) as conn:
        persons = conn.execute(
            "SELECT count(*) FROM persons p JOIN households h ON h.id = p.household_id "
            "JOIN buildings b ON b.id = h.building_id WHERE b.grid_code = %s",
            (a_grid,),
        ).fetchone()
        facilities = conn.execute(
            "SELECT count(*) FROM facilities WHERE grid_code = %s", (a_grid,)
        ).fetchone()
    assert persons is not None and facilities is not None
    assert body["persons"] == persons[0]
    assert sum(body["facilities_by_class"].values()) == facilities[0]
    assert body["buildings"] >= 1 and body["workers"]
    assert "phone" not in body["workers"][0]


def test_unknown_code_is_404_naming_the_code(client) -> None:
    resp = client.get("/api/v1/areas/500199999")
    assert resp.status_code == 404
    assert "500199999" in resp.json()["message"]


def test_malformed_code_is_422(client) -> None:
    resp = client.get("/api/v1/areas/abc")
    assert resp.status_code == 422
    assert "abc" in resp.json()["message"]


def test_profile_of_non_grid_is_422(client, a_grid: str) -> None:
    assert client.get(f"/api/v1/grids/{a_grid[:12]}/profile").status_code == 422


def test_openapi_lists_operations(client) -> None:
    spec = client.get("/openapi.json").json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"get_area", "list_area_children", "get_area_geometry", "get_grid_profile"} <= ops
