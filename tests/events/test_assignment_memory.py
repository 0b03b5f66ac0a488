"""Assignment from the in-memory lookup engine equals the PostGIS rule, edge points included."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.db.engine import libpq_url
from gridmap.events.assignment import (
    locate_grid,
    locate_in_memory,
    pick_worker,
    pick_worker_in_memory,
)
from gridmap.events.intake import Report, create_event
from gridmap.lookup.service import LookupService


@pytest.fixture(scope="module")
def service(events_db: str) -> Iterator[LookupService]:
    svc = LookupService(libpq_url(events_db))
    svc.active()
    yield svc


@pytest.fixture(scope="module")
def edge_points(events_db: str) -> list[tuple[float, float]]:
    """Every vertex and every edge midpoint of 60 grids, plus points just outside the city."""
    with psycopg.connect(events_db) as conn:
        rows = conn.execute(
            "WITH g AS (SELECT geom FROM areas WHERE level = 'grid' ORDER BY code LIMIT 60), "
            "seg AS (SELECT (ST_DumpSegments(ST_Boundary(geom))).geom s FROM g) "
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_StartPoint(s) p FROM seg UNION ALL "
            "SELECT ST_LineInterpolatePoint(s, 0.5) FROM seg) q"
        ).fetchall()
        xmin, ymin, xmax, ymax = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM areas WHERE level = 'grid') s").fetchone()
    outside = [(xmin - 1e-9, ymin), (xmax + 1e-9, ymax), (xmin, ymin), (xmax, ymax)]
    return [(float(x), float(y)) for x, y in rows] + outside


def test_in_memory_grid_equals_postgis_on_edges_and_vertices(
    session: Session, service: LookupService, edge_points: list[tuple[float, float]]
) -> None:
    assert len(edge_points) > 400
    shared = 0
    for lon, lat in edge_points:
        want = locate_grid(session, lon, lat, 1)
        got, snap = locate_in_memory(service, lon, lat)
        assert got == want, (lon, lat)
        assert snap.generation == 1
        shared += want is not None
    assert shared > 400, "most edge points lie in some grid"


def test_in_memory_worker_equals_sql_for_every_grid(
    session: Session, service: LookupService, grid_points
) -> None:
    snap = service.active()
    for code, _, _ in grid_points:
        assert pick_worker_in_memory(snap, code) == pick_worker(session, code), code


def test_in_memory_worker_follows_duty_changes(
    session: Session, service: LookupService, grid_points
) -> None:
    code = grid_points[7][0]
    session.execute(text(
        "UPDATE workers SET on_duty = false WHERE id IN "
        "(SELECT worker_id FROM worker_assignments WHERE grid_code = :g) "
        "AND role <> 'grid_leader'"), {"g": code})
    session.commit()
    try:
        service.reload_workers()
        got = pick_worker_in_memory(service.active(), code)
        assert got == pick_worker(session, code)
        assert "grid leader" in got[1] or got[0] is None
    finally:
        session.execute(text("UPDATE workers SET on_duty = true WHERE id IN "
                             "(SELECT worker_id FROM worker_assignments WHERE grid_code = :g)"),
                        {"g": code})
        session.commit()
        service.reload_workers()


def test_intake_with_lookup_equals_intake_without(
    session: Session, service: LookupService, clock, grid_points
) -> None:
    for code, lon, lat in grid_points[100:110]:
        for category in ("urban.appearance.exposed_garbage", "social.neighbour_dispute",
                         "social.care_check"):
            report = Report(source="resident", category=category, lon=lon, lat=lat)
            memory = create_event(session, report, now=clock.now(), lookup=service).event
            sql = create_event(session, report, now=clock.now()).event
            assert memory.grid_code == sql.grid_code == code
            for column in ("generation", "worker_code", "department_code", "handler_level",
                           "queue", "flagged", "assignment_reason", "status"):
                assert getattr(memory, column) == getattr(sql, column), column
    session.rollback()
