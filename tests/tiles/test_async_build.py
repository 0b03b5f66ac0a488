"""Tile misses built on the async pool: the same bytes as the route's build, every layer,
scoped and unscoped; uncached servers; and a fall-back to the route when the pool fails."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from gridmap.db.engine import make_engine
from tests.conftest import make_key
from tests.tiles.test_events_layer import CLOSE_STEPS, act, report
from tests.tiles.test_tiles import tile_of
from tiles.async_build import APPLICATION_NAME, AsyncTileBuilder
from tiles.cache import TileCache, etag_of
from tiles.layers import build_tile, get_layer


@pytest.fixture(scope="module")
def engine(city_factory) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A private copy of the sample city with a few open events."""
    engine = make_engine(str(city_factory()))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, background=False)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        client.app.state.tile_cache.version_ttl_s = 60.0  # type: ignore[attr-defined]
        yield client


@pytest.fixture(scope="module")
def street_point(engine: Engine, client: TestClient) -> tuple[str, float, float]:
    """(grid code, lon, lat) inside a grid with buildings and facilities, with open events
    in it and in grids next to it by code."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
            "FROM areas WHERE level = 'grid' ORDER BY code) g")).all()  # fmt: skip
        furnished = set(conn.execute(text(
            "SELECT grid_code FROM buildings INTERSECT SELECT grid_code FROM facilities")
        ).scalars())  # fmt: skip
    middle = next(i for i in range(len(rows) // 2, len(rows)) if rows[i][0] in furnished)
    code, lon, lat = rows[middle]
    for other in rows[middle - 3: middle + 3]:
        event = report(client, (str(other[0]), float(other[1]), float(other[2])))
        act(client, event["id"], CLOSE_STEPS[:2])
    report(client, (str(code), float(lon), float(lat)))
    return str(code), float(lon), float(lat)


def key_of(client: TestClient, engine: Engine, area: str) -> str:
    """A new operator key for ``area``, known to the app at once."""
    key = make_key(engine, "operator", area)
    client.app.state.principals.invalidate()  # type: ignore[attr-defined]
    return key


def builder_of(client: TestClient) -> AsyncTileBuilder:
    return client.app.state.tile_builder  # type: ignore[attr-defined, no-any-return]


def cache_of(client: TestClient) -> TileCache:
    return client.app.state.tile_cache  # type: ignore[attr-defined, no-any-return]


def fresh_versions(client: TestClient) -> None:
    """Forget every tile; one request through the route loads a fresh version snapshot
    (and caches only that tile, which the tests do not ask for)."""
    cache_of(client).clear()
    assert client.get("/tiles/districts/0/0/0.mvt").status_code == 200


@pytest.mark.parametrize(
    ("layer", "z"),
    [("districts", 8), ("streets", 11), ("communities", 12), ("grids", 12), ("grids", 14),
     ("buildings", 15), ("facilities", 15), ("events", 12), ("events", 15)],
)  # fmt: skip
@pytest.mark.parametrize("scoped", [False, True])
def test_a_miss_built_on_the_pool_equals_the_route_build(
    client: TestClient, engine: Engine, street_point: tuple[str, float, float],
    layer: str, z: int, scoped: bool,
) -> None:  # fmt: skip
    code, lon, lat = street_point
    headers = {}
    scopes = None
    if scoped:  # an operator of the grid's street
        headers = {"Authorization": f"Bearer {key_of(client, engine, code[:9])}"}
        scopes = [f"{code[:9]}%"]
    if layer in ("buildings", "facilities"):  # sparse: aim at one of the grid's
        with engine.connect() as conn:
            lon, lat = conn.execute(text(
                f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM {layer} "
                "WHERE grid_code = :code ORDER BY code LIMIT 1) f"), {"code": code}).one()
    x, y = tile_of(lon, lat, z)
    fresh_versions(client)
    built = builder_of(client).built
    resp = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers)
    assert resp.status_code == 200
    assert builder_of(client).built == built + 1, "the miss was built on the async pool"
    with engine.connect() as conn:
        expected = build_tile(conn, get_layer(layer), z, x, y, cache_of(client).feature_cap,
                              scopes)
    # A street's operator sees no district: a district's code is not inside the street.
    assert bool(expected) != (scoped and layer == "districts"), f"{layer} z{z}: features"
    assert resp.content == expected
    assert resp.headers["etag"] == etag_of(expected)
    assert resp.headers["cache-control"].startswith("private, max-age=")
    assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    again = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers)
    assert again.content == expected and builder_of(client).built == built + 1, "cached"


def test_scoped_events_layer_shows_only_the_callers_grids(
    client: TestClient, engine: Engine, street_point: tuple[str, float, float]
) -> None:
    import mapbox_vector_tile

    code, lon, lat = street_point
    x, y = tile_of(lon, lat, 12)
    with engine.connect() as conn:  # a grid of another community in the same z12 tile
        grids = conn.execute(text(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
            "FROM areas WHERE level = 'grid' AND code NOT LIKE :p) g"), {"p": code[:12] + "%"}
        ).all()  # fmt: skip
    other = next(g for g in grids if tile_of(g[1], g[2], 12) == (x, y))
    outsider = report(client, (str(other[0]), float(other[1]), float(other[2])))
    key = key_of(client, engine, code[:12])  # the grid's community
    tile = client.get(f"/tiles/events/12/{x}/{y}.mvt",
                      headers={"Authorization": f"Bearer {key}"})
    ids = {f["properties"]["id"] for f in
           mapbox_vector_tile.decode(tile.content).get("events", {}).get("features", [])}
    with engine.connect() as conn:
        grids = dict(conn.execute(text("SELECT id, grid_code FROM events")).all())
    assert ids and all(grids[i].startswith(code[:12]) for i in ids)
    everything = client.get(f"/tiles/events/12/{x}/{y}.mvt")
    all_ids = {f["properties"]["id"] for f in
               mapbox_vector_tile.decode(everything.content)["events"]["features"]}
    assert outsider["id"] in all_ids - ids, "the unscoped tile carries the other community's"


def test_an_uncached_server_builds_every_request_on_the_pool(
    client: TestClient, street_point: tuple[str, float, float]
) -> None:
    _, lon, lat = street_point
    x, y = tile_of(lon, lat, 14)
    cache = cache_of(client)
    fresh_versions(client)
    cache.size = 0
    try:
        built = builder_of(client).built
        bodies = {client.get(f"/tiles/grids/14/{x}/{y}.mvt").content for _ in range(3)}
        assert builder_of(client).built == built + 3 and len(bodies) == 1
    finally:
        cache.size = 100


def test_a_broken_pool_connection_falls_back_to_the_route(
    client: TestClient, engine: Engine, street_point: tuple[str, float, float]
) -> None:
    _, lon, lat = street_point
    x, y = tile_of(lon, lat, 14)
    builder = builder_of(client)
    fresh_versions(client)
    with engine.connect() as conn:
        expected = build_tile(conn, get_layer("grids"), 14, x, y, cache_of(client).feature_cap)
    # A real fault: PostgreSQL ends every connection of the pool (as in a restart).
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE application_name = %s", (APPLICATION_NAME,)).fetchone()
    assert ended and ended[0] >= 1
    built = builder.built
    resp = client.get(f"/tiles/grids/14/{x}/{y}.mvt")
    assert resp.status_code == 200 and resp.content == expected, "the route answered"
    assert builder.built == built and not builder.available
    deadline = time.monotonic() + 30
    while builder.built == built and time.monotonic() < deadline:
        time.sleep(0.2)
        fresh_versions(client)
        assert client.get(f"/tiles/grids/14/{x}/{y}.mvt").content == expected
    assert builder.built > built, "the pool serves again after its connections were replaced"
