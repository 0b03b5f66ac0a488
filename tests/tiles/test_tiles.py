"""Vector tiles: decoded with mapbox-vector-tile, ETag/304, matrix checks, invalidation."""

from __future__ import annotations

import math
from collections.abc import Iterator

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gridmap.db.engine import make_engine
from gridmap.layers import invalidate, layer_versions
from tests.conftest import make_key

PERSONAL = ("id_number", "phone", "address", "persons", "person_name")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile that contains a point."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


@pytest.fixture(scope="module")
def city_center(sample_city) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    grids = sample_city.level("grid").to_crs(4326)
    point = grids.geometry.iloc[len(grids) // 2].representative_point()
    return point.x, point.y


def decode(body: bytes) -> dict:  # type: ignore[type-arg]
    return mapbox_vector_tile.decode(body)


def test_grid_tile_has_features_and_properties(client: TestClient, city_center) -> None:
    x, y = tile_of(*city_center, 14)
    resp = client.get(f"/tiles/grids/14/{x}/{y}.mvt")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = decode(resp.content)["grids"]
    assert layer["features"], "a z14 tile at the city centre has grids"
    props = layer["features"][0]["properties"]
    assert set(props) == {"code", "name", "parent_code", "open_events"}
    assert len(props["code"]) == 15 and props["open_events"] == 0


@pytest.mark.parametrize("z", [0, 1, 2, 3])
def test_districts_show_at_the_lowest_zooms(client: TestClient, city_center, z: int) -> None:
    """The tile holding the city, at the world's first zooms: its envelope with the
    margin reaches past the antimeridian (a lon/lat envelope that wrapped there drew
    nothing east of Greenwich at z1 and z2)."""
    x, y = tile_of(*city_center, z)
    resp = client.get(f"/tiles/districts/{z}/{x}/{y}.mvt")
    assert resp.status_code == 200 and resp.content
    assert decode(resp.content)["districts"]["features"]


@pytest.mark.parametrize(
    ("layer", "z", "fields"),
    [
        ("districts", 8, {"code", "name", "level", "parent_code"}),
        ("streets", 11, {"code", "name", "level", "parent_code"}),
        ("communities", 12, {"code", "name", "level", "parent_code"}),
        ("buildings", 15, {"code", "use", "floors", "grid_code"}),
        ("facilities", 15, {"code", "major_code", "class", "name", "state", "grid_code"}),
    ],
)
def test_each_layer_serves_its_properties_and_no_personal_data(
    client: TestClient, city_engine: Engine, city_center, layer: str, z: int, fields: set[str]
) -> None:
    x, y = tile_of(*city_center, z)
    if layer in ("buildings", "facilities"):  # sparse: aim at one of them
        with city_engine.connect() as conn:
            point = conn.execute(
                text(f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p "
                     f"FROM {layer} ORDER BY code LIMIT 1) AS one")
            ).one()
        x, y = tile_of(point[0], point[1], z)
    found: list[dict] = []  # type: ignore[type-arg]
    for dx in (-1, 0, 1):  # a neighbourhood: buildings/facilities are sparse
        for dy in (-1, 0, 1):
            resp = client.get(f"/tiles/{layer}/{z}/{x + dx}/{y + dy}.mvt")
            assert resp.status_code == 200
            if resp.content:
                found += decode(resp.content)[layer]["features"]
    assert found, f"{layer} has features around the centre at z{z}"
    for feature in found:
        assert set(feature["properties"]) == fields
        assert not set(feature["properties"]) & set(PERSONAL)


def test_below_min_zoom_is_an_empty_tile(client: TestClient, city_center) -> None:
    x, y = tile_of(*city_center, 5)
    resp = client.get(f"/tiles/buildings/5/{x}/{y}.mvt")
    assert resp.status_code == 200 and resp.content == b""


def test_generalised_geometry_at_low_zoom(client: TestClient, city_center) -> None:
    x, y = tile_of(*city_center, 9)
    low = decode(client.get(f"/tiles/districts/9/{x}/{y}.mvt").content)["districts"]
    assert low["features"]


def test_feature_cap(city_engine: Engine, city_center) -> None:
    from tiles.layers import build_tile, get_layer

    x, y = tile_of(*city_center, 12)
    with city_engine.connect() as conn:
        full = decode(build_tile(conn, get_layer("grids"), 12, x, y, cap=5000))["grids"]
        capped = decode(build_tile(conn, get_layer("grids"), 12, x, y, cap=3))["grids"]
    assert len(full["features"]) > 3
    assert len(capped["features"]) == 3


def test_etag_and_304(client: TestClient, city_center) -> None:
    x, y = tile_of(*city_center, 14)
    url = f"/tiles/grids/14/{x}/{y}.mvt"
    first = client.get(url)
    etag = first.headers["etag"]
    assert "max-age" in first.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize(
    "path", ["/tiles/grids/23/0/0.mvt", "/tiles/grids/3/8/0.mvt", "/tiles/grids/3/0/-1.mvt"]
)
def test_outside_the_tile_matrix_is_400(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 400
    assert resp.json()["error"] == "OutOfRangeError"


def test_unknown_layer_is_404(client: TestClient) -> None:
    assert client.get("/tiles/persons/14/0/0.mvt").status_code == 404
    assert client.get("/tiles/persons/tilejson.json").status_code == 404


def test_tilejson(client: TestClient) -> None:
    doc = client.get("/tiles/grids/tilejson.json").json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"][0].endswith("/tiles/grids/{z}/{x}/{y}.mvt")
    assert doc["vector_layers"][0]["id"] == "grids"
    w, s, e, n = doc["bounds"]
    assert w < e and s < n
    names = {layer["name"] for layer in client.get("/tiles").json()}
    assert {"districts", "streets", "communities", "grids", "buildings", "facilities"} <= names


@pytest.fixture()
def own_city(city_factory) -> Iterator[tuple[str, Engine]]:  # type: ignore[no-untyped-def]
    """A private copy of the sample city (these tests change it)."""
    url = city_factory()
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def _new_generation_without(url: str, grid_code: str) -> None:
    """Publish a generation that keeps every area but ``grid_code`` (as an import would)."""
    with psycopg.connect(url) as conn:
        old = conn.execute("SELECT id FROM generations WHERE active").fetchone()[0]
        new = conn.execute("INSERT INTO generations (active) VALUES (false) RETURNING id")
        new_id = new.fetchone()[0]
        conn.execute(
            "UPDATE areas SET generation_high = %s WHERE code = %s AND generation_high IS NULL",
            (old, grid_code),
        )
        conn.execute("UPDATE generations SET active = false WHERE id = %s", (old,))
        conn.execute("UPDATE generations SET active = true WHERE id = %s", (new_id,))


def test_cache_serves_then_is_invalidated_by_a_new_generation(own_city, city_center) -> None:
    from api.main import create_app

    url, engine = own_city
    x, y = tile_of(*city_center, 12)
    path = f"/tiles/grids/12/{x}/{y}.mvt"
    with TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        cache = client.app.state.tile_cache
        cache.version_ttl_s = 0.0
        before = client.get(path)
        codes = [f["properties"]["code"] for f in decode(before.content)["grids"]["features"]]
        assert len(codes) > 1
        victim = codes[0]
        # Behind the cache's back the tile would stay; the trigger-bumped version evicts it.
        assert client.get(path).headers["etag"] == before.headers["etag"]
        _new_generation_without(url, victim)
        after = client.get(path)
        assert after.headers["etag"] != before.headers["etag"]
        left = {f["properties"]["code"] for f in decode(after.content)["grids"]["features"]}
        assert after.headers["etag"] == client.get(path).headers["etag"]  # cached again
        assert victim not in left and left == set(codes) - {victim}
        assert client.get(path, headers={"If-None-Match": before.headers["etag"]}).status_code \
            == 200


def test_invalidate_with_bbox_keeps_tiles_elsewhere(own_city, city_center) -> None:
    from tiles.cache import TileCache

    _, engine = own_city
    cache = TileCache(engine, size=100, feature_cap=5000, version_ttl_s=0.0)
    x, y = tile_of(*city_center, 14)
    tile = cache.get("grids", 14, x, y)
    with engine.begin() as conn:
        before = layer_versions(conn)["grids"]
        invalidate(conn, ["grids"], bbox=(0.0, 0.0, 0.001, 0.001))  # far away
    with engine.connect() as conn:
        assert layer_versions(conn)["grids"] == before + 1
    assert cache.get("grids", 14, x, y) is tile  # revalidated, not rebuilt
    lon, lat = city_center
    with engine.begin() as conn:
        invalidate(conn, ["grids"], bbox=(lon - 0.0001, lat - 0.0001, lon + 0.0001, lat + 0.0001))
    assert cache.get("grids", 14, x, y) is not tile


def test_invalidate_rejects_a_malformed_bbox(city_engine: Engine) -> None:
    from gridmap.errors import InvalidInputError

    with city_engine.connect() as conn, pytest.raises(InvalidInputError, match="bbox"):
        invalidate(conn, ["grids"], bbox=(10.0, 5.0, 1.0, 2.0))
