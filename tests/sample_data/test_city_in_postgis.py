"""Invariants of the loaded sample city, checked by PostGIS itself."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import TEST_GRIDS


@pytest.fixture(scope="module")
def conn(city_db: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(city_db) as connection:
        yield connection


def _one(conn: psycopg.Connection, sql: str) -> object:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_union_of_grids_equals_union_of_districts(conn) -> None:
    ratio = _one(
        conn,
        """
        WITH g AS (SELECT ST_Union(geom) AS u FROM areas WHERE level = 'grid'),
             d AS (SELECT ST_Union(geom) AS u FROM areas WHERE level = 'district')
        SELECT ST_Area(ST_SymDifference(g.u, d.u)) / ST_Area(d.u) FROM g, d
        """,
    )
    assert ratio < 1e-9


def test_grids_do_not_overlap(conn) -> None:
    overlap = _one(
        conn,
        """
        SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
        FROM areas a JOIN areas b
          ON a.level = 'grid' AND b.level = 'grid' AND a.code < b.code
         AND ST_Intersects(a.geom, b.geom)
        """,
    )
    assert overlap < 1.0  # square metres over the whole city: shared edges only


def test_every_area_inside_its_parent(conn) -> None:
    outside = conn.execute(
        """
        SELECT c.code, ST_Area(ST_Difference(c.geom, p.geom)) / ST_Area(c.geom) AS frac
        FROM areas c JOIN areas p ON p.code = c.parent_code
        WHERE ST_Area(ST_Difference(c.geom, p.geom)) / ST_Area(c.geom) > 1e-9
        """
    ).fetchall()
    assert outside == []
    orphans = _one(
        conn,
        "SELECT count(*) FROM areas c LEFT JOIN areas p ON p.code = c.parent_code "
        "WHERE c.level <> 'city' AND p.code IS NULL",
    )
    assert orphans == 0


def test_codes_well_formed_unique_and_prefixed(conn) -> None:
    bad_prefix = _one(
        conn,
        "SELECT count(*) FROM areas c JOIN areas p ON p.code = c.parent_code "
        "WHERE c.level NOT IN ('city','district') AND left(c.code, length(p.code)) <> p.code",
    )
    dupes = _one(
        conn, "SELECT count(*) FROM (SELECT code FROM areas GROUP BY code HAVING count(*) > 1) d"
    )
    invalid = _one(conn, "SELECT count(*) FROM areas WHERE NOT ST_IsValid(geom)")
    assert (bad_prefix, dupes, invalid) == (0, 0, 0)


def test_counts_and_placements(conn) -> None:
    counts = dict(conn.execute("SELECT level, count(*) FROM areas GROUP BY level").fetchall())
    assert counts["grid"] == TEST_GRIDS
    assert counts["city"] == 1
    assert 1 <= counts["district"] < counts["street"] < counts["community"] < counts["grid"]
    empty_grids = _one(
        conn,
        "SELECT count(*) FROM areas a WHERE level = 'grid' AND NOT EXISTS "
        "(SELECT 1 FROM buildings b WHERE b.grid_code = a.code)",
    )
    no_worker = _one(
        conn,
        "SELECT count(*) FROM areas a WHERE level = 'grid' AND NOT EXISTS "
        "(SELECT 1 FROM worker_assignments w WHERE w.grid_code = a.code)",
    )
    misplaced = _one(
        conn,
        "SELECT count(*) FROM buildings b JOIN areas a ON a.code = b.grid_code "
        "WHERE NOT ST_Covers(a.geom, b.geom)",
    )
    assert (empty_grids, no_worker, misplaced) == (0, 0, 0)
    assert _one(conn, "SELECT count(*) FROM persons") > 0
    assert _one(conn, "SELECT count(*) FROM facilities") > 0


def test_one_active_generation(conn) -> None:
    assert _one(conn, "SELECT count(*) FROM generations WHERE active") == 1
