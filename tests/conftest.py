"""Shared fixtures: a real PostGIS (embedded cluster, or GRIDMAP_TEST_DATABASE_URL).

Each test session gets throwaway databases on that server; ``city_db`` holds a small
deterministic sample city built by ``sample_data`` and loaded by the bulk loader.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Collection, Iterator
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
    import fcntl

    from gridmap.db.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(REPO / ".gridmap" / "test-cluster")
    # Several test sessions may share the cluster (a suite and a fuzzing run): each holds
    # a shared lock while it runs; the last one out, alone to get it exclusively, stops it.
    users = REPO / ".gridmap" / "test-cluster.users"
    users.parent.mkdir(parents=True, exist_ok=True)
    with users.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield cluster.up()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another session still uses it
        cluster.down()


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_factory(server_url: str) -> Iterator[Callable[..., str]]:
    """Creates empty (or migrated) throwaway databases; drops them at the end."""
    created: list[str] = []

    def create(*, migrated: bool = True, template: str | None = None) -> str:
        name = f"gm_test_{uuid.uuid4().hex[:10]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"{copy}')
        created.append(name)
        url = _with_database(server_url, name)
        if template:
            return url
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
def city_factory(database_factory: Callable[..., str], sample_city) -> Callable[[], str]:  # type: ignore[no-untyped-def]
    """Makes fresh, writable databases holding the sample city.

    The city is loaded once into a template database; each copy is a
    ``CREATE DATABASE … TEMPLATE`` (nothing may stay connected to the template).
    """
    from gridmap.ingest.bulk import load_city

    template = database_factory()
    with psycopg.connect(template) as conn:
        load_city(conn, sample_city)
    name = make_url(template).database
    return lambda: database_factory(template=name)


@pytest.fixture(scope="session")
def city_db(city_factory: Callable[[], str]) -> str:
    """URL of a migrated database with the sample city loaded (treat as read-only)."""
    return city_factory()


@pytest.fixture(scope="session")
def city_engine(city_db: str) -> Iterator[Engine]:
    engine = make_engine(city_db)
    yield engine
    engine.dispose()


def interior_points(url: str) -> list[tuple[str, float, float]]:
    """(grid code, lon, lat) of an interior point of every grid, ordered by code."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
            "FROM areas WHERE level = 'grid') g ORDER BY code"
        ).fetchall()
    return [(str(c), float(x), float(y)) for c, x, y in rows]


def make_key(engine: Engine, role: str, area_code: str | None = None,
             worker_code: str | None = None) -> str:
    """Create an API key (and for a grid worker, its user) in the test database."""
    import secrets

    from gridmap.auth import store
    from gridmap.db.engine import session_scope

    with session_scope(engine) as session:
        user_id = None
        if worker_code is not None:
            user = store.add_user(session, f"w-{secrets.token_hex(4)}", secrets.token_hex(8),
                                  role, area_code, worker_code)
            user_id = user.id
        return store.create_key(session, f"test-{role}", role, area_code, user_id).secret


@pytest.fixture(scope="session")
def anon_client(city_engine: Engine):  # type: ignore[no-untyped-def]
    """An HTTP client without credentials on the API app bound to the sample city."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(city_engine)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def admin_key(city_engine: Engine) -> str:
    """An admin API key in the sample-city database."""
    return make_key(city_engine, "admin")


@pytest.fixture(scope="session")
def client(anon_client, admin_key: str):  # type: ignore[no-untyped-def]
    """The API client authenticated as admin (an API key created in the test database)."""
    from fastapi.testclient import TestClient

    # Same app (started by anon_client's lifespan), its own default headers.
    return TestClient(anon_client.app, headers={"Authorization": f"Bearer {admin_key}"})


@pytest.fixture(scope="session")
def as_role(city_engine: Engine, anon_client):  # type: ignore[no-untyped-def]
    """``as_role("operator", "500103001")`` → request headers for a new key of that role."""

    def headers(role: str, area_code: str | None = None,
                worker_code: str | None = None) -> dict[str, str]:
        key = make_key(city_engine, role, area_code, worker_code)
        anon_client.app.state.principals.invalidate()  # a new key counts at once
        return {"Authorization": f"Bearer {key}"}

    return headers


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


def schema_diff(url: str, tables: Collection[str]) -> list[object]:
    """What Alembic's autogenerate finds between ``gridmap.models`` and the database at
    ``url`` (built by the migrations), for ``tables`` and their indexes: [] if they agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from gridmap.db.engine import sqlalchemy_url
    from gridmap.models import Base

    def ours(obj, name, type_, _reflected, _compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in tables

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": ours,
                                                             "compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


@contextlib.contextmanager
def before_and_after(
    database_factory: Callable[..., str], revision: str, generations: int
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """Connections to a database migrated to ``revision`` and one at the head, each
    holding generations 1..``generations`` (1 active): for comparing a migration's rule
    with the one it replaced, statement by statement."""
    conns = []
    try:
        for target in (revision, "head"):
            url = database_factory(migrated=False)
            migrate.upgrade(url, target)
            conn = psycopg.connect(url)
            conns.append(conn)
            conn.execute("INSERT INTO generations (id, active) SELECT g, g = 1 "
                         f"FROM generate_series(1, {generations}) g")  # fmt: skip
            conn.commit()
        yield conns[0], conns[1]
    finally:
        for conn in conns:
            conn.close()
