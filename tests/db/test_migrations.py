"""Migrations go up and down on a real PostGIS."""

from __future__ import annotations

import psycopg

from gridmap.db import migrate
from tests.conftest import schema_diff

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


def _refused(conn: psycopg.Connection, error: type[Exception], statement: str,
             params: tuple[object, ...] = ()) -> str:
    """Run ``statement``, expecting ``error``; roll back and return its message."""
    try:
        conn.execute(statement, params)  # type: ignore[arg-type]
    except error as exc:
        conn.rollback()
        return str(exc)
    raise AssertionError(f"accepted: {statement} {params}")


def test_code_per_generation_is_exclusive(database_factory) -> None:
    """The same code cannot be valid twice in one generation, however the rows get there."""
    url = database_factory()
    square = "ST_Multi(ST_MakeEnvelope(106.5, 29.5, 106.6, 29.6, 4326))"
    insert = (
        "INSERT INTO areas (code, level, name, generation_low, generation_high, geom, geom_3857) "
        f"VALUES (%s, 'district', 'x', %s, %s, {square}, ST_Transform({square}, 3857))"
    )
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO generations (id, active) VALUES (1, false), (2, false), "
                     "(3, true)")  # fmt: skip
        conn.execute(insert, ("500106", 1, 1))
        conn.execute(insert, ("500106", 2, None))
        conn.execute(insert, ("500107", 1, 2))
        conn.commit()
        # A closed row inside an open one, and inside another closed one.
        message = _refused(conn, psycopg.errors.ExclusionViolation, insert, ("500106", 2, 2))
        assert "500106" in message and "2..now" in message
        _refused(conn, psycopg.errors.ExclusionViolation, insert, ("500107", 2, 3))
        # An open row starting before a closed one ends.
        _refused(conn, psycopg.errors.ExclusionViolation, insert, ("500107", 2, None))
        # Two open rows of one code.
        _refused(conn, psycopg.errors.UniqueViolation, insert, ("500106", 3, None))
        # Both rows of a clash in one statement.
        _refused(conn, psycopg.errors.ExclusionViolation,
                 f"{insert}, ('500108', 'district', 'y', 1, 2, {square}, "
                 f"ST_Transform({square}, 3857))", ("500108", 2, 3))  # fmt: skip
        # Re-opening the closed row, or stretching it over the open one.
        _refused(conn, psycopg.errors.UniqueViolation,
                 "UPDATE areas SET generation_high = NULL WHERE generation_high = 1")
        _refused(conn, psycopg.errors.ExclusionViolation,
                 "UPDATE areas SET generation_high = 2 WHERE generation_high = 1")
        # What a publish does is accepted: close the open row, then open a new one.
        conn.execute("UPDATE areas SET generation_high = 2 WHERE code = '500106' "
                     "AND generation_high IS NULL")  # fmt: skip
        conn.execute(insert, ("500106", 3, None))
        conn.execute(insert, ("500107", 3, None))
        conn.commit()
        rows = conn.execute("SELECT code, generation_low, generation_high FROM areas "
                            "ORDER BY code, generation_low").fetchall()  # fmt: skip
    assert rows == [("500106", 1, 1), ("500106", 2, 2), ("500106", 3, None),
                    ("500107", 1, 2), ("500107", 3, None)]  # fmt: skip


def test_models_match_the_migrations(database_factory) -> None:
    """gridmap/models describes every table the migrations build (indexes, foreign
    keys and column types too)."""
    from gridmap.models import Base

    assert schema_diff(database_factory(), tuple(Base.metadata.tables)) == []
