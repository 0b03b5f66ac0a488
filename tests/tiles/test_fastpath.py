"""The ASGI fast path for tile-cache hits: same bytes and headers, ETag/304, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.main import create_app
from api.tile_fastpath import etag_matches
from tests.conftest import make_key
from tests.tiles.test_tiles import _new_generation_without, own_city, tile_of  # noqa: F401
from tiles.cache import TileCache


class Builds:
    """Tiles built so far: by the FastAPI route (``calls``) and on the async pool."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.calls: list[tuple[str, int, int, int]] = []

    def __len__(self) -> int:
        builder = self.client.app.state.tile_builder  # type: ignore[attr-defined]
        return len(self.calls) + builder.built


@pytest.fixture()
def counted(city_engine: Engine) -> Iterator[tuple[TestClient, Builds]]:
    """A client that counts every tile built, by the route or on the async pool."""
    with TestClient(create_app(city_engine)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(city_engine, 'admin')}"
        cache: TileCache = client.app.state.tile_cache  # type: ignore[attr-defined]
        cache.version_ttl_s = 60.0
        builds = Builds(client)
        real_get = cache.get

        def get(layer: str, z: int, x: int, y: int, scopes=None):  # type: ignore[no-untyped-def]
            builds.calls.append((layer, z, x, y))
            return real_get(layer, z, x, y, scopes)

        cache.get = get  # type: ignore[method-assign]
        yield client, builds


@pytest.fixture(scope="module")
def centre(sample_city) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    grids = sample_city.level("grid").to_crs(4326)
    point = grids.geometry.iloc[len(grids) // 2].representative_point()
    return point.x, point.y


def test_hit_is_served_without_the_route_with_same_bytes_and_headers(counted, centre) -> None:
    client, calls = counted
    x, y = tile_of(*centre, 14)
    url = f"/tiles/grids/14/{x}/{y}.mvt"
    miss = client.get(url)
    assert miss.status_code == 200 and len(calls) == 1
    hit = client.get(url)
    assert len(calls) == 1, "a fresh hit is not built again"
    assert hit.status_code == 200 and hit.content == miss.content
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert hit.headers[name] == miss.headers[name], name
    assert mapbox_vector_tile.decode(hit.content)["grids"]["features"]


def test_hit_honours_if_none_match(counted, centre) -> None:
    client, calls = counted
    x, y = tile_of(*centre, 13)
    url = f"/tiles/grids/13/{x}/{y}.mvt"
    etag = client.get(url).headers["etag"]
    not_modified = client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag and "max-age" in not_modified.headers[
        "cache-control"]
    changed = client.get(url, headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.content
    assert len(calls) == 1


def test_empty_tile_below_min_zoom_is_cached_and_empty(counted, centre) -> None:
    client, calls = counted
    x, y = tile_of(*centre, 5)
    for _ in range(2):
        resp = client.get(f"/tiles/buildings/5/{x}/{y}.mvt")
        assert resp.status_code == 200 and resp.content == b""
        assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [("/tiles/grids/23/0/0.mvt", 400), ("/tiles/grids/3/8/0.mvt", 400),
     ("/tiles/grids/3/0/-1.mvt", 400), ("/tiles/persons/14/0/0.mvt", 404),
     ("/tiles/grids/99/0/0.mvt", 400)],
)  # fmt: skip
def test_errors_still_come_from_the_route(counted, path: str, status: int) -> None:
    client, _ = counted
    for _ in range(2):  # nothing bad gets cached and served by the fast path
        resp = client.get(path)
        assert resp.status_code == status
        assert resp.json()["error"] in ("OutOfRangeError", "NotFoundError", "InvalidInputError")


def test_other_methods_pass_through(counted, centre) -> None:
    client, _ = counted
    x, y = tile_of(*centre, 14)
    client.get(f"/tiles/grids/14/{x}/{y}.mvt")
    assert client.post(f"/tiles/grids/14/{x}/{y}.mvt").status_code == 405


def test_fast_path_does_not_serve_a_tile_of_a_replaced_generation(own_city, centre) -> None:  # noqa: F811
    url, engine = own_city
    x, y = tile_of(*centre, 12)
    path = f"/tiles/grids/12/{x}/{y}.mvt"
    with TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        client.app.state.tile_cache.version_ttl_s = 0.3  # type: ignore[attr-defined]
        before = client.get(path)
        assert client.get(path).headers["etag"] == before.headers["etag"]
        codes = [f["properties"]["code"]
                 for f in mapbox_vector_tile.decode(before.content)["grids"]["features"]]
        _new_generation_without(url, codes[0])
        time.sleep(0.4)  # the version snapshot is trusted for version_ttl_s
        after = client.get(path)
        assert after.headers["etag"] != before.headers["etag"]
        left = {f["properties"]["code"]
                for f in mapbox_vector_tile.decode(after.content)["grids"]["features"]}
        assert codes[0] not in left


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, False), ("", False), ('"a"', True), ('W/"a"', True), ('"b", "a"', True),
     ("*", True), ('"b"', False), ('"a', False)],
)  # fmt: skip
def test_etag_matches(header: str | None, expected: bool) -> None:
    assert etag_matches(header, '"a"') is expected
