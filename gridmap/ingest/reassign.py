"""Re-assignment after a new grid generation is activated: set-based SQL, one pass each.

- buildings: the grid that covers the building's point-on-surface (lowest code on
  ties); households and persons follow their building (they carry no grid column);
- facilities: the grid that covers the facility point (lowest code on ties);
- workers: kept where their grid code survives; else moved to the new grid covering
  the old grid's point-on-surface; where no new grid covers it, left assigned to the
  removed grid and listed (``workers_unplaced``);
- events: open events (every status but :data:`~gridmap.models.events.CLOSED_STATUSES`),
  as for facilities, then re-routed by the events module's own rule
  (:func:`gridmap.events.assignment.route`: the new grid's worker, else the community's
  leader, else the community); each moved event gets an audit row (grid and worker, old
  → new, and the generation) and its webhook deliveries. Status, deadlines and clocks
  are kept. Closed and rejected events keep their historical grid.

Only features that can have moved are looked at: those whose grid code was closed, and
those touching the new generation's added or changed grids.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import psycopg
from psycopg import sql

from gridmap.events import notify
from gridmap.events.assignment import PICK_WORKER_SQL, Assignment, outside, route, worker_of
from gridmap.generations import valid_in_sql
from gridmap.models.events import OPEN_EVENTS_SQL

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
    LEFT JOIN areas a ON a.level = 'grid' AND {valid_in_sql('%(gen)s', 'a')}
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

_POINT_TARGETS_SQL = """
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
)"""

_POINTS_SQL = _POINT_TARGETS_SQL + """, moved AS (
    UPDATE {table} t SET grid_code = x.new FROM target x
    WHERE t.id = x.id AND t.grid_code IS DISTINCT FROM x.new
    RETURNING x.new
)
SELECT new, count(*) FROM moved GROUP BY new
"""

# Open events whose grid changes: kept in a temporary table while their new grids'
# workers are picked, then moved in one statement (_MOVE_EVENTS_SQL).
_MOVING_EVENTS = "gridmap_moving_events"
_MOVING_SQL = """
INSERT INTO {moving} (id, old_grid, new_grid, old_worker, affair_class, department_code)
SELECT e.id, e.grid_code, x.new, e.worker_code, e.affair_class, e.department_code
FROM target x JOIN events e ON e.id = x.id
WHERE e.grid_code IS DISTINCT FROM x.new
"""

# Each moving event gets the route of its (new grid, affair class, department) from
# :data:`routes` (a JSON array); status, deadlines and clocks stay. One audit row per
# event (as intake's "assign" row: from and to the same status), and its webhook
# deliveries, in the same statement. Stamped with the statement's time, not the
# publisher's transaction start (half a minute earlier for a big city).
_MOVE_EVENTS_SQL = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(CAST(%(routes)s AS jsonb)) AS r(
        grid_code text, affair_class text, department_in text, worker_code text,
        department_code text, handler_level text, queue text, flagged boolean,
        reason text)
), moved AS (
    UPDATE events e SET grid_code = x.new_grid, generation = %(gen)s,
        worker_code = r.worker_code, department_code = r.department_code,
        handler_level = r.handler_level, queue = r.queue, flagged = r.flagged,
        assignment_reason = r.reason, updated_at = statement_timestamp()
    FROM {moving} x
    JOIN r ON r.grid_code IS NOT DISTINCT FROM x.new_grid AND r.affair_class = x.affair_class
          AND r.department_in IS NOT DISTINCT FROM x.department_code
    WHERE e.id = x.id
    RETURNING e.*, x.old_grid, x.old_worker
), audit AS (
    INSERT INTO event_transitions (event_id, action, from_status, to_status, actor, role,
                                   note, at)
    SELECT id, %(action)s, status, status, %(actor)s, 'system',
        'grid ' || coalesce(old_grid, 'none') || ' → ' || coalesce(grid_code, 'none')
        || ', worker ' || coalesce(old_worker, 'none') || ' → '
        || coalesce(worker_code, 'none') || ': generation ' || %(gen)s || ' published; '
        || assignment_reason,
        statement_timestamp()
    FROM moved ORDER BY id
), hooks AS (
    {publish}
)
SELECT grid_code, count(*) FROM moved GROUP BY grid_code
"""
REASSIGN_ACTION = "reassign"
"""The audit action (and webhook ``kind``) of an event moved to a new grid."""
REASSIGN_ACTOR = "reassignment"

_WORKERS_SQL = f"""
WITH gone AS (
    SELECT wa.worker_id, wa.grid_code FROM worker_assignments wa
    WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = 'grid' AND a.code = wa.grid_code
                      AND {valid_in_sql('%(gen)s', 'a')})
), target AS (
    SELECT DISTINCT ON (g.worker_id, g.grid_code) g.worker_id, g.grid_code AS old, n.code AS new
    FROM gone g
    JOIN areas o ON o.level = 'grid' AND o.code = g.grid_code AND {valid_in_sql('%(prev)s', 'o')}
    JOIN areas n ON n.level = 'grid' AND {valid_in_sql('%(gen)s', 'n')}
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


# Workers still assigned to a grid this generation removed: _WORKERS_SQL found no new grid
# covering it (its area left every grid: gaps let through with a raised threshold).
_UNPLACED_WORKERS_SQL = f"""
SELECT w.code, wa.grid_code FROM worker_assignments wa JOIN workers w ON w.id = wa.worker_id
WHERE EXISTS (SELECT 1 FROM areas o WHERE o.level = 'grid' AND o.code = wa.grid_code
              AND o.generation_high = %(prev)s)
  AND NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = 'grid' AND a.code = wa.grid_code
                  AND {valid_in_sql('%(gen)s', 'a')})
ORDER BY wa.grid_code, w.code
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
    summary["persons_moved"] = tally("persons", [(r[0], r[2]) for r in buildings if r[2]])
    summary["facilities_moved"] = tally("facilities", _points(conn, "facilities", params))
    summary["workers_moved"] = tally("workers", conn.execute(_WORKERS_SQL, params).fetchall())
    summary["workers_unplaced"] = [{"worker": worker, "grid": grid} for worker, grid
                                   in conn.execute(_UNPLACED_WORKERS_SQL, params)]  # fmt: skip
    summary["events_moved"] = tally("events", reassign_open_events(conn, generation, previous))
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
) -> list[tuple[Any, ...]]:
    query = sql.SQL(_POINTS_SQL).format(**_point_targets(table, geom, filter_sql))
    return conn.execute(query, params).fetchall()


def _point_targets(table: str, geom: str, filter_sql: sql.Composable | None
                   ) -> dict[str, sql.Composable]:  # fmt: skip
    return {
        "table": sql.Identifier(table),
        "geom": sql.Identifier(geom),
        "filter": filter_sql or sql.SQL(""),
        "valid": sql.SQL(valid_in_sql('%(gen)s', 'a')),
    }


# Open events stored under an older generation after the publisher moved events: by a
# process whose in-memory lookup still served the previous generation (it switches on
# NOTIFY, once its index is rebuilt: seconds). Only those stored from shortly before the
# activation (its commit; the publisher moved events before, during re-assignment) on,
# each to the grid covering it now.
_LATE_TARGETS_SQL = """
WITH active AS (
    SELECT activated_at FROM generations WHERE id = %(gen)s
), target AS (
    SELECT DISTINCT ON (t.id) t.id, a.code AS new
    FROM events t
    LEFT JOIN areas a ON a.level = 'grid' AND {valid} AND ST_Covers(a.geom, t.geom)
    WHERE t.generation < %(gen)s {filter}
      AND t.created_at >= (SELECT activated_at FROM active) - interval '10 minutes'
    ORDER BY t.id, a.code
)"""
LATE_WINDOW_S = 600
"""How long after an activation :func:`reassign_late_events` looks for late events."""


def reassign_late_events(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Move open events stored under an older generation since the active one was
    activated — by a lookup index that had not switched yet — as the publisher moved
    the others (:func:`reassign_open_events`). Does nothing once the active generation
    is older than :data:`LATE_WINDOW_S`. Returns (new grid, count) rows."""
    row = conn.execute(
        "SELECT id FROM generations WHERE active AND activated_at > now() - make_interval("
        "secs => %s)", (LATE_WINDOW_S,)).fetchone()  # fmt: skip
    if row is None:
        return []
    return _move_open_events(conn, int(row[0]), _LATE_TARGETS_SQL, {"gen": row[0]})


def reassign_open_events(
    conn: psycopg.Connection, generation: int, previous: int
) -> list[tuple[Any, ...]]:
    """Move open events to the grid now covering their point and re-route them.

    Open: every status but :data:`~gridmap.models.events.CLOSED_STATUSES` (closed and
    rejected events keep their historical grid). A moved event gets ``generation``, the
    worker, handler level, queue and reason the events module gives an event of its
    affair class in its new grid (an official affair keeps its department; outside every
    grid: the command-center queue, flagged), an audit row and its webhook deliveries;
    its status, deadlines and clocks are kept. Returns (new grid, count) rows.
    """
    return _move_open_events(conn, generation, _POINT_TARGETS_SQL,
                             {"gen": generation, "prev": previous})  # fmt: skip


def _move_open_events(conn: psycopg.Connection, generation: int, targets_sql: str,
                      params: dict[str, Any]) -> list[tuple[Any, ...]]:  # fmt: skip
    """Move the open events ``targets_sql`` (a ``target`` CTE of event id → new grid)
    finds in another grid, and re-route them; see :func:`reassign_open_events`."""
    moving = sql.Identifier(_MOVING_EVENTS)
    conn.execute(sql.SQL(
        "CREATE TEMPORARY TABLE {} (id bigint PRIMARY KEY, old_grid text, new_grid text,"
        " old_worker text, affair_class text, department_code text)").format(moving))
    # Only the events table has a status here: the partial indexes' own predicate fits.
    targets = _point_targets("events", "geom", sql.SQL("AND " + OPEN_EVENTS_SQL))
    conn.execute(sql.SQL(targets_sql + _MOVING_SQL).format(moving=moving, **targets), params)
    routes = _routes(conn, generation)
    rows = conn.execute(
        sql.SQL(_MOVE_EVENTS_SQL).format(
            moving=moving, publish=notify.publish_sql("moved", REASSIGN_ACTION)),
        {"gen": generation, "routes": orjson.dumps(routes).decode(), "action": REASSIGN_ACTION,
         "actor": REASSIGN_ACTOR},
    ).fetchall()
    conn.execute(sql.SQL("DROP TABLE {}").format(moving))
    return rows


def _routes(conn: psycopg.Connection, generation: int) -> list[dict[str, Any]]:
    """The route of every (new grid, affair class, department) of the moving events."""
    moving = sql.Identifier(_MOVING_EVENTS)
    picked = {
        row[0]: worker_of(*row)
        for row in conn.execute(sql.SQL(
            "WITH grid AS (SELECT DISTINCT new_grid AS code FROM {} WHERE new_grid IS NOT NULL)"
        ).format(moving) + sql.SQL("\n" + PICK_WORKER_SQL))
    }
    routes = []
    for grid, affair_class, department in conn.execute(sql.SQL(
            "SELECT DISTINCT new_grid, affair_class, department_code FROM {}").format(moving)):
        where: Assignment
        if grid is None:
            where = outside(generation, "the event's point")
        else:
            kept = (department, f"department {department} kept" if department
                    else "no department")
            where = route(grid, generation, affair_class, picked[grid], kept)
        routes.append({
            "grid_code": grid, "affair_class": affair_class, "department_in": department,
            "worker_code": where.worker_code, "department_code": where.department_code,
            "handler_level": where.handler_level, "queue": where.queue,
            "flagged": where.flagged, "reason": where.reason,
        })
    return routes
