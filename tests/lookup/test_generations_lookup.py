"""A second generation: as_of answers history; running apps switch without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from gridmap.db.engine import make_engine
from tests.conftest import make_key

NEIGHBOURS_SQL = """
SELECT a.code, b.code, ST_X(ST_PointOnSurface(b.geom)), ST_Y(ST_PointOnSurface(b.geom))
FROM areas a JOIN areas b ON a.parent_code = b.parent_code AND a.code < b.code
WHERE a.level = 'grid' AND b.level = 'grid' AND ST_Relate(a.geom, b.geom, 'FF2F11212')
ORDER BY a.code, b.code LIMIT 1
"""

MERGE_SQL = [
    "INSERT INTO generations (id, description, active) VALUES (2, 'merge two grids', false)",
    "UPDATE areas SET generation_high = 1 WHERE code IN (%(a)s, %(b)s) AND generation_low = 1",
    """
INSERT INTO areas (code, level, name, parent_code, generation_low, geom, geom_3857)
SELECT %(a)s, 'grid', 'merged', min(parent_code), 2, ST_Multi(ST_Union(geom)),
       ST_Transform(ST_Multi(ST_Union(geom)), 3857)
FROM areas WHERE code IN (%(a)s, %(b)s)
""",
]

ACTIVATE_SQL = [
    "UPDATE generations SET active = false WHERE id = 1",
    "UPDATE generations SET active = true, activated_at = now() WHERE id = 2",
]


def _run(conn: psycopg.Connection, statements: list[str], **params: object) -> None:
    for sql in statements:
        conn.execute(sql, params or None)


@pytest.fixture()
def city(city_factory) -> str:  # type: ignore[no-untyped-def]
    return str(city_factory())


@pytest.fixture()
def app_client(city: str) -> Iterator[TestClient]:
    engine = make_engine(city)
    with TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        yield client
    engine.dispose()


def _grid(client: TestClient, x: float, y: float, **params: object) -> str | None:
    body = client.get("/api/v1/lookup", params={"lon": x, "lat": y, **params}).json()
    return (body.get("grid") or {}).get("code")


def test_activation_switches_running_app_and_as_of_keeps_history(city, app_client) -> None:
    with psycopg.connect(city) as conn:
        row = conn.execute(NEIGHBOURS_SQL).fetchone()
        assert row is not None
        a, b, x, y = row
        before = datetime.now(UTC)
        assert _grid(app_client, x, y) == b
        _run(conn, MERGE_SQL, a=a, b=b)
        conn.commit()
        assert _grid(app_client, x, y) == b, "staged generation must not be served"
        _run(conn, ACTIVATE_SQL)
        conn.commit()

    deadline = time.monotonic() + 15
    while _grid(app_client, x, y) != a and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _grid(app_client, x, y) == a
    assert _grid(app_client, x, y, as_of=1) == b
    assert _grid(app_client, x, y, as_of=before.isoformat()) == b
    assert _grid(app_client, x, y, as_of=2) == a
    missing = app_client.get("/api/v1/lookup", params={"lon": x, "lat": y, "as_of": 99})
    assert missing.status_code == 404 and "99" in missing.json()["message"]


def test_sql_function_honours_generation(city) -> None:
    with psycopg.connect(city) as conn:
        row = conn.execute(NEIGHBOURS_SQL).fetchone()
        assert row is not None
        a, b, x, y = row
        _run(conn, MERGE_SQL, a=a, b=b)
        _run(conn, ACTIVATE_SQL)
        point = "ST_SetSRID(ST_MakePoint(%s, %s), 4326)"
        now = conn.execute(f"SELECT gridmap_lookup({point})", (x, y)).fetchone()
        then = conn.execute(f"SELECT gridmap_lookup({point}, 1)", (x, y)).fetchone()
        mercator = conn.execute(
            f"SELECT gridmap_lookup(ST_Transform({point}, 3857))", (x, y)
        ).fetchone()
    assert now == (a,) and then == (b,) and mercator == (a,)


def test_as_of_without_an_offset_is_utc_whatever_the_servers_time_zone(city: str) -> None:
    """A timestamp without an offset means UTC, also on a server in Asia/Shanghai (which
    would read it eight hours earlier: before the city was loaded)."""
    from gridmap.lookup.service import LookupService

    with psycopg.connect(city, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Shanghai'")
        row = conn.execute("SELECT activated_at FROM generations WHERE id = 1").fetchone()
    assert row is not None
    just_after = (row[0] + timedelta(seconds=1)).astimezone(UTC).replace(tzinfo=None)
    service = LookupService(city)
    assert service.snapshot(just_after.isoformat()).generation == 1
    assert service.snapshot(just_after).generation == 1
