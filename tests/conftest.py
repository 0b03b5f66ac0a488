"""Shared fixtures: a real PostGIS (embedded cluster, or GRIDMAP_TEST_DATABASE_URL).

Each test session gets throwaway databases on that server; ``city_db`` holds a small
deterministic sample city built by ``sample_data`` and loaded by the bulk loader.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gridmap.db import migrate
from gridmap.db.engine import make_engine

REPO = Path(__file__).resolve().parents[1]
TEST_GRIDS = 300
TEST_SEED = 7


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostGIS server for this test session (any database on it)."""
    configured = os.environ.get("GRIDMAP_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from gridmap.db.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(REPO / ".gridmap" / "test-cluster")
    yield cluster.up()
    cluster.down()


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_factory(server_url: str) -> Iterator[Callable[..., str]]:
    """Creates empty (or migrated) throwaway databases; drops them at the end."""
    created: list[str] = []

    def create(*, migrated: bool = True) -> str:
        name = f"gm_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = _with_database(server_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        if migrated:
            migrate.upgrade(url)
        return url

    yield create
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sample_city():  # type: ignore[no-untyped-def]
    """The small deterministic test city (generated once per session)."""
    from sample_data.city import generate_city

    return generate_city(grids=TEST_GRIDS, seed=TEST_SEED)


@pytest.fixture(scope="session")
def city_db(database_factory: Callable[..., str], sample_city) -> str:  # type: ignore[no-untyped-def]
    """URL of a migrated database with the sample city loaded (treat as read-only)."""
    from gridmap.ingest.bulk import load_city

    url = database_factory()
    with psycopg.connect(url) as conn:
        load_city(conn, sample_city)
    return url


@pytest.fixture(scope="session")
def city_engine(city_db: str) -> Iterator[Engine]:
    engine = make_engine(city_db)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def client(city_engine: Engine):  # type: ignore[no-untyped-def]
    """An HTTP client on the API app bound to the sample-city database."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(city_engine)) as test_client:
        yield test_client


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_api(database_url: str) -> Iterator[str]:
    """A real uvicorn serving the API on ``database_url``, on a free port; yields its URL."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server(city_db: str) -> Iterator[str]:
    """A real uvicorn serving the API on the sample city, on a free port; yields its URL."""
    with serve_api(city_db) as url:
        yield url
