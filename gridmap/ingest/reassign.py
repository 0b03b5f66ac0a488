"""Re-assignment after a new grid generation is activated: set-based SQL, one pass each.

- buildings: the grid that covers the building's point-on-surface (lowest code on
  ties); households and persons follow their building (they carry no grid column);
- facilities: the grid that covers the facility point (lowest code on ties);
- workers: kept where their grid code survives; else moved to the new grid covering
  the old grid's point-on-surface;
- events (when an ``events`` table exists): open events only, as for facilities;
  closed events keep their historical grid.

Only features that can have moved are looked at: those whose grid code was closed, and
those touching the new generation's added or changed grids.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

OPEN_EVENT_STATES = ("reported", "accepted", "dispatched", "in_progress", "resolved")

_VALID = "{a}.generation_low <= {g} AND ({a}.generation_high IS NULL OR {a}.generation_high >= {g})"


def _valid(alias: str, param: str) -> str:
    return _VALID.format(a=alias, g=param)


_BUILDINGS_SQL = f"""
WITH closed AS (
    SELECT code FROM areas WHERE level = 'grid' AND generation_high = %(prev)s
), fresh AS (
    SELECT geom FROM areas WHERE level = 'grid' AND generation_low = %(gen)s
), candidates AS (
    SELECT b.id FROM buildings b WHERE b.grid_code IN (SELECT code FROM closed)
    UNION
    SELECT b.id FROM buildings b JOIN fresh f ON ST_Intersects(b.geom, f.geom)
), target AS (
    SELECT DISTINCT ON (b.id) b.id, b.grid_code AS old, a.code AS new
    FROM buildings b JOIN candidates c ON c.id = b.id
    LEFT JOIN areas a ON a.level = 'grid' AND {_valid('a', '%(gen)s')}
         AND ST_Covers(a.geom, ST_PointOnSurface(b.geom))
    ORDER BY b.id, a.code
), moved AS (
    UPDATE buildings b SET grid_code = t.new FROM target t
    WHERE b.id = t.id AND b.grid_code IS DISTINCT FROM t.new
    RETURNING b.id, t.new
)
SELECT m.new, count(DISTINCT m.id), count(p.id)
FROM moved m
LEFT JOIN households h ON h.building_id = m.id
LEFT JOIN persons p ON p.household_id = h.id
GROUP BY m.new
"""

_POINTS_SQL = """
WITH closed AS (
    SELECT code FROM areas WHERE level = 'grid' AND generation_high = %(prev)s
), fresh AS (
    SELECT geom FROM areas WHERE level = 'grid' AND generation_low = %(gen)s
), candidates AS (
    SELECT t.id FROM {table} t WHERE t.grid_code IN (SELECT code FROM closed) {filter}
    UNION
    SELECT t.id FROM {table} t JOIN fresh f ON ST_Covers(f.geom, t.{geom}) {filter}
), target AS (
    SELECT DISTINCT ON (t.id) t.id, a.code AS new
    FROM {table} t JOIN candidates c ON c.id = t.id
    LEFT JOIN areas a ON a.level = 'grid' AND {valid} AND ST_Covers(a.geom, t.{geom})
    ORDER BY t.id, a.code
), moved AS (
    UPDATE {table} t SET grid_code = x.new {extra} FROM target x
    WHERE t.id = x.id AND t.grid_code IS DISTINCT FROM x.new
    RETURNING x.new
)
SELECT new, count(*) FROM moved GROUP BY new
"""

_WORKERS_SQL = f"""
WITH gone AS (
    SELECT wa.worker_id, wa.grid_code FROM worker_assignments wa
    WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = 'grid' AND a.code = wa.grid_code
                      AND {_valid('a', '%(gen)s')})
), target AS (
    SELECT DISTINCT ON (g.worker_id, g.grid_code) g.worker_id, g.grid_code AS old, n.code AS new
    FROM gone g
    JOIN areas o ON o.level = 'grid' AND o.code = g.grid_code AND {_valid('o', '%(prev)s')}
    JOIN areas n ON n.level = 'grid' AND {_valid('n', '%(gen)s')}
         AND ST_Covers(n.geom, ST_PointOnSurface(o.geom))
    ORDER BY g.worker_id, g.grid_code, n.code
), added AS (
    INSERT INTO worker_assignments (worker_id, grid_code)
    SELECT worker_id, new FROM target ON CONFLICT DO NOTHING
), removed AS (
    DELETE FROM worker_assignments wa USING target t
    WHERE wa.worker_id = t.worker_id AND wa.grid_code = t.old
)
SELECT new, count(*) FROM target GROUP BY new
"""


def reassign_after_grid_change(
    conn: psycopg.Connection, generation: int, previous: int
) -> dict[str, Any]:
    """Re-assign everything placed in grids; returns counts moved, in total and per grid."""
    started = time.perf_counter()
    params = {"gen": generation, "prev": previous}
    per_grid: dict[str, dict[str, int]] = {}

    def tally(kind: str, rows: list[tuple[Any, ...]]) -> int:
        total = 0
        for row in rows:
            key = row[0] or "(none)"
            per_grid.setdefault(key, {})[kind] = per_grid.get(key, {}).get(kind, 0) + row[1]
            total += int(row[1])
        return total

    buildings = conn.execute(_BUILDINGS_SQL, params).fetchall()
    summary: dict[str, Any] = {"buildings_moved": tally("buildings", buildings)}
    summary["persons_moved"] = sum(int(r[2]) for r in buildings)
    summary["facilities_moved"] = tally("facilities", _points(conn, "facilities", params))
    summary["workers_moved"] = tally("workers", conn.execute(_WORKERS_SQL, params).fetchall())
    events = reassign_open_events(conn, generation, previous)
    summary["events_moved"] = tally("events", events) if events is not None else 0
    summary["events_table"] = events is not None
    summary["per_grid"] = per_grid
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _points(
    conn: psycopg.Connection,
    table: str,
    params: dict[str, int],
    *,
    geom: str = "geom",
    filter_sql: sql.Composable | None = None,
    extra: sql.Composable | None = None,
) -> list[tuple[Any, ...]]:
    query = sql.SQL(_POINTS_SQL).format(
        table=sql.Identifier(table),
        geom=sql.Identifier(geom),
        filter=filter_sql or sql.SQL(""),
        valid=sql.SQL(_valid("a", "%(gen)s")),
        extra=extra or sql.SQL(""),
    )
    return conn.execute(query, params).fetchall()


def _columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, udt_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {name: udt for name, udt in rows}


def reassign_open_events(
    conn: psycopg.Connection, generation: int, previous: int
) -> list[tuple[Any, ...]] | None:
    """Hook: move open events to the grid now covering their point.

    Runs only when an ``events`` table with ``grid_code``, ``status`` and a point
    geometry column (``geom`` or ``location``) exists; returns None otherwise. Events
    whose status is not one of :data:`OPEN_EVENT_STATES` keep their historical grid.
    A ``generation_id`` (or ``generation``) column, if present, records the generation
    the event was re-assigned under.
    """
    columns = _columns(conn, "events")
    geom = next((c for c in ("geom", "location", "point") if columns.get(c) == "geometry"), None)
    if not columns or geom is None or "grid_code" not in columns or "status" not in columns:
        return None
    gen_column = next((c for c in ("generation_id", "generation") if c in columns), None)
    extra = (
        sql.SQL(", {} = %(gen)s").format(sql.Identifier(gen_column)) if gen_column else None
    )
    open_filter = sql.SQL("AND t.status = ANY(%(open)s)")
    return _points(
        conn, "events", {**params_with_open(generation, previous)}, geom=geom,
        filter_sql=open_filter, extra=extra,
    )  # fmt: skip


def params_with_open(generation: int, previous: int) -> dict[str, Any]:
    """Query parameters of the events step."""
    return {"gen": generation, "prev": previous, "open": list(OPEN_EVENT_STATES)}
