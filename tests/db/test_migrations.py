"""Migrations go up and down on a real PostGIS."""

from __future__ import annotations

import psycopg

from gridmap.db import migrate

TABLES = {
    "generations", "areas", "buildings", "households", "persons", "departments",
    "facility_categories", "facilities", "workers", "worker_assignments",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_creates_schema_and_seeds_catalogs(database_factory) -> None:
    url = database_factory()
    assert TABLES <= _tables(url)
    with psycopg.connect(url) as conn:
        majors = conn.execute(
            "SELECT DISTINCT major_code FROM facility_categories ORDER BY 1"
        ).fetchall()
        gist = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING gist%'"
        ).fetchone()
    assert [m[0] for m in majors] == ["01", "02", "03", "04", "05", "06"]
    assert gist is not None and gist[0] >= 5


def test_downgrade_then_upgrade_again(database_factory) -> None:
    url = database_factory()
    migrate.downgrade(url, "base")
    assert not (TABLES & _tables(url))
    migrate.upgrade(url)
    assert TABLES <= _tables(url)


def test_code_per_generation_is_exclusive(database_factory) -> None:
    """The same code cannot be valid twice in one generation."""
    url = database_factory()
    square = "ST_Multi(ST_MakeEnvelope(106.5, 29.5, 106.6, 29.6, 4326))"
    insert = (
        "INSERT INTO areas (code, level, name, generation_low, generation_high, geom, geom_3857) "
        f"VALUES ('500106', 'district', 'x', %s, %s, {square}, ST_Transform({square}, 3857))"
    )
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO generations (id, active) VALUES (1, false), (2, true)")
        conn.execute(insert, (1, 1))
        conn.execute(insert, (2, None))
        conn.commit()
        try:
            conn.execute(insert, (2, 2))
        except psycopg.errors.ExclusionViolation:
            conn.rollback()
        else:
            raise AssertionError("overlapping generations of one code were accepted")
