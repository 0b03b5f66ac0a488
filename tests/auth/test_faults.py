"""Faults: the API survives a PostgreSQL restart (throwaway cluster of its own).

An import killed mid-commit leaving the active generation intact is covered by
``tests/ingest/test_imports.py::test_killed_mid_commit_leaves_active_generation``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from gridmap.db import migrate
from gridmap.db.cluster import EmbeddedCluster
from gridmap.db.engine import make_engine
from tests.conftest import make_key


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    base = tmp_path / "private"
    base.mkdir(mode=0o700)
    cluster = EmbeddedCluster(base / ".gridmap")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _wait_for(client: TestClient, path: str, status: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        got = client.get(path).status_code
        if got == status:
            return got
        time.sleep(0.3)
    return got


def _tiles_built_on_the_pool(client: TestClient) -> int:
    """Ask for tiles not cached yet; how many of them the async pool built."""
    builder = client.app.state.tile_builder  # type: ignore[attr-defined]
    client.app.state.tile_cache.clear()  # type: ignore[attr-defined]
    built = builder.built
    for x in range(3):  # the first loads the cache's version snapshot through the route
        assert client.get(f"/tiles/grids/14/{13100 + x}/6000.mvt").status_code == 200
    return int(builder.built - built)


def test_api_survives_a_postgres_restart(own_cluster: EmbeddedCluster) -> None:
    from api.main import create_app

    url = own_cluster.up()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with TestClient(create_app(engine)) as client:
            client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
            assert client.get("/healthz").status_code == 200
            assert client.get("/api/v1/audit").status_code == 200
            builder = client.app.state.tile_builder  # type: ignore[attr-defined]
            assert _tiles_built_on_the_pool(client) > 0
            own_cluster.down()
            down = client.get("/healthz")
            assert down.status_code == 503 and down.json()["status"] == "degraded"
            client.app.state.principals.invalidate()  # type: ignore[attr-defined]
            during = client.get("/api/v1/audit")
            assert during.status_code == 503, during.text
            assert during.json()["error"] == "DatabaseUnavailableError"
            tile = client.get("/tiles/grids/14/13000/6000.mvt")  # a miss: needs the database
            assert tile.status_code == 503, tile.text
            assert tile.json()["error"] == "DatabaseUnavailableError"
            # The fast paths authenticate through the reloading key cache too: a clear 503
            # from the route, never a 500 escaping the middleware.
            report = {"category": "urban.appearance.exposed_garbage", "lon": 106.5, "lat": 29.5}
            for method, path, body in (("GET", "/api/v1/lookup?lon=106.5&lat=29.5", None),
                                       ("POST", "/api/v1/events", report)):
                client.app.state.principals.invalidate()  # type: ignore[attr-defined]
                fast = client.request(method, path, json=body)
                assert fast.status_code == 503, (path, fast.text)
            own_cluster.up()
            assert _wait_for(client, "/healthz", 200) == 200
            assert client.get("/api/v1/audit").status_code == 200
            built = builder.built
            deadline = time.monotonic() + 30
            while builder.built == built and time.monotonic() < deadline:
                _tiles_built_on_the_pool(client)  # the async pool reconnects too
                time.sleep(0.3)
            assert builder.built > built
    finally:
        engine.dispose()
