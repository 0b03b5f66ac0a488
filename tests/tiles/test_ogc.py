"""OGC API – Features: documents, paging, bbox, properties; GDAL's OAPIF driver as client."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient


def test_landing_conformance_collections(client: TestClient) -> None:
    landing = client.get("/ogc")
    assert landing.headers["content-type"].startswith("application/json")
    rels = {link["rel"] for link in landing.json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/core") for c in conf)
    assert any(c.endswith("/conf/geojson") for c in conf)
    ids = {c["id"] for c in client.get("/ogc/collections").json()["collections"]}
    assert {"districts", "streets", "communities", "grids", "buildings", "facilities",
            "events"} <= ids
    grids = client.get("/ogc/collections/grids").json()
    assert any(link["rel"] == "items" for link in grids["links"])


def test_items_paging_with_next_and_prev(client: TestClient) -> None:
    first = client.get("/ogc/collections/grids/items", params={"limit": 100})
    assert first.headers["content-type"] == "application/geo+json"
    body = first.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == 100 and body["numberMatched"] == 300
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert "next" in links and "prev" not in links
    second = client.get(links["next"]).json()
    assert second["features"][0]["id"] > body["features"][-1]["id"]
    assert "prev" in {link["rel"] for link in second["links"]}
    last = client.get("/ogc/collections/grids/items", params={"limit": 100, "offset": 200}).json()
    assert "next" not in {link["rel"] for link in last["links"]}


def test_items_bbox_and_properties(client: TestClient) -> None:
    everything = client.get("/ogc/collections/grids/items", params={"limit": 1000}).json()
    one = everything["features"][0]
    xs = [c[0] for c in one["geometry"]["coordinates"][0][0]]
    ys = [c[1] for c in one["geometry"]["coordinates"][0][0]]
    box = f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}"
    inside = client.get(
        "/ogc/collections/grids/items", params={"bbox": box, "properties": "code,name"}
    ).json()
    codes = {f["id"] for f in inside["features"]}
    assert one["id"] in codes and len(codes) < everything["numberMatched"]
    assert set(inside["features"][0]["properties"]) == {"code", "name"}


def test_item_by_id_and_errors(client: TestClient) -> None:
    some = client.get("/ogc/collections/facilities/items", params={"limit": 1}).json()
    code = some["features"][0]["id"]
    item = client.get(f"/ogc/collections/facilities/items/{code}")
    assert item.status_code == 200 and item.headers["content-type"] == "application/geo+json"
    assert item.json()["properties"]["code"] == code
    assert client.get("/ogc/collections/facilities/items/0000").status_code == 404
    assert client.get("/ogc/collections/persons").status_code == 404
    assert client.get("/ogc/collections/persons/items").status_code == 404
    bad = client.get("/ogc/collections/grids/items", params={"bbox": "1,2,x,4"})
    assert bad.status_code == 422 and "bbox" in bad.json()["message"]
    assert client.get("/ogc/collections/grids/items", params={"bbox": "1,2,3"}).status_code == 422
    unknown = client.get("/ogc/collections/grids/items", params={"properties": "id_number"})
    assert unknown.status_code == 422


def test_buildings_carry_no_personal_data(client: TestClient) -> None:
    body = client.get("/ogc/collections/buildings/items", params={"limit": 50}).json()
    for feature in body["features"]:
        assert set(feature["properties"]) == {"code", "use", "floors", "grid_code"}


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
def test_ogrinfo_lists_and_reads_a_collection(live_server: str, admin_key: str) -> None:
    auth = ["--config", "GDAL_HTTP_HEADERS", f"Authorization: Bearer {admin_key}"]
    listing = subprocess.run(
        ["ogrinfo", *auth, "-ro", "-q", f"OAPIF:{live_server}/ogc"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    for name in ("districts", "grids", "buildings", "facilities", "events"):
        assert name in listing
    grids = subprocess.run(
        ["ogrinfo", *auth, "-ro", "-al", "-so", "-oo", "PAGE_SIZE=100",
         f"OAPIF:{live_server}/ogc", "grids"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "Feature Count: 300" in grids
    assert "code: String" in grids
    features = subprocess.run(
        ["ogrinfo", *auth, "-ro", "-al", "-oo", "PAGE_SIZE=100", "-where", "code LIKE '5%'",
         f"OAPIF:{live_server}/ogc", "districts"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "MULTIPOLYGON" in features or "POLYGON" in features


def test_area_search(client: TestClient) -> None:
    grid = client.get("/ogc/collections/grids/items", params={"limit": 1}).json()["features"][0]
    code, name = grid["id"], grid["properties"]["name"]
    by_code = client.get("/api/v1/areas", params={"q": code}).json()
    assert by_code[0]["code"] == code and len(by_code[0]["bbox"]) == 4
    prefix = client.get("/api/v1/areas", params={"q": code[:6], "limit": 5}).json()
    assert prefix[0]["level"] in ("city", "district") and len(prefix) == 5
    by_name = client.get("/api/v1/areas", params={"q": name}).json()
    assert all(name in hit["name"] for hit in by_name) and by_name
    assert client.get("/api/v1/areas", params={"q": "%"}).json() == []
    assert client.get("/api/v1/areas", params={"q": ""}).status_code == 422
