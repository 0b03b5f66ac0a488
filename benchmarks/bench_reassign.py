"""Re-assignment after a re-division of the 65,000-grid sample (≈200k buildings, ≈1M
persons): gridmap's set-based re-assignment against a plain full PostGIS re-assignment
(every building and facility joined to the new grids with ``ST_Covers``), in one run.

The shared benchmark database is copied (``CREATE DATABASE … TEMPLATE``) to a scratch
database first, so it stays intact, and ``--events`` events (one per building, every
status in turn, routed to the building's grid and its worker) are written into the copy,
so that moving open events is timed too. The re-division merges two touching grids in some
communities and splits a grid in two in others; it is published through the import
path (checks, diff, commit), and the re-assignment inside the commit is timed.

Run: .venv/bin/python -m benchmarks.bench_reassign [--communities 300] [--events 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import shapely
from sqlalchemy.engine import make_url

from benchmarks.common import bench_database, fresh_database
from gridmap.ingest.publish import commit_plan, prepare_import
from gridmap.models.events import EVENT_STATUSES
from sample_data.redivide import split_in_two

SCRATCH = "gridmap_bench_reassign"

_NAIVE_SQL = """
UPDATE {table} t SET grid_code = x.code FROM (
    SELECT DISTINCT ON (t.id) t.id, a.code FROM {table} t
    JOIN areas a ON a.level = 'grid' AND a.generation_high IS NULL
     AND ST_Covers(a.geom, {point})
    ORDER BY t.id, a.code
) x WHERE t.id = x.id AND t.grid_code IS DISTINCT FROM x.code
"""

# One event per building (the first ``n``), at its point-on-surface, in every status in
# turn and every leaf category in turn, routed as intake routes it: the building's grid,
# the grid's first full-time worker, the category's department.
_EVENTS_SQL = """
INSERT INTO events (source, category_code, affair_class, priority, status, lon, lat, geom,
    description, media_urls, grid_code, generation, worker_code, department_code,
    handler_level, assignment_reason, flagged, queue, escalation_level, rework_count,
    assigned_at)
SELECT 'resident', c.code, c.affair_class, c.priority, s.status, ST_X(b.p), ST_Y(b.p), b.p,
    '', '[]', b.grid_code, (SELECT id FROM generations WHERE active), w.code,
    c.department_code, 'grid', 'benchmark', false,
    CASE WHEN c.department_code IS NULL THEN 'grid' ELSE 'department' END, 'grid', 0, now()
FROM (SELECT grid_code, ST_PointOnSurface(geom) AS p, row_number() OVER (ORDER BY id) AS n
      FROM buildings ORDER BY id LIMIT %(n)s) b
JOIN (SELECT code, affair_class, priority, department_code,
             row_number() OVER (ORDER BY code) - 1 AS k, count(*) OVER () AS m
      FROM event_categories WHERE leaf) c ON c.k = b.n %% c.m
JOIN unnest(%(statuses)s::text[]) WITH ORDINALITY AS s(status, k)
     ON s.k - 1 = b.n %% cardinality(%(statuses)s::text[])
LEFT JOIN LATERAL (
    SELECT w.code FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
    WHERE a.grid_code = b.grid_code AND w.role = 'full_time' ORDER BY w.code LIMIT 1
) w ON true
"""


def add_events(conn: psycopg.Connection, n: int) -> int:
    """Write ``n`` events (see ``_EVENTS_SQL``) and commit; returns how many were written."""
    if n <= 0:
        return 0
    cur = conn.execute(_EVENTS_SQL, {"n": n, "statuses": list(EVENT_STATUSES)})
    conn.execute("ANALYZE events")
    conn.commit()
    return cur.rowcount


def scratch_copy(url: str, name: str = SCRATCH) -> str:
    """A throwaway copy of the database at ``url`` (template copy: seconds, not minutes)."""
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    return fresh_database(server, name, template=make_url(url).database)


def redivide(conn: psycopg.Connection, communities: int, seed: int = 7, *, splits: bool = True
             ) -> gpd.GeoDataFrame:  # fmt: skip
    """The active grids with ``communities`` communities re-divided (half merges, half splits;
    ``splits=False``: merges only)."""
    rows = conn.execute(
        "SELECT code, name, parent_code, ST_AsBinary(geom) FROM areas"
        " WHERE level = 'grid' AND generation_high IS NULL ORDER BY code"
    ).fetchall()
    frame = gpd.GeoDataFrame(
        {"CODE": [r[0] for r in rows], "NAME": [r[1] for r in rows],
         "PARENT": [r[2] for r in rows]},
        geometry=shapely.from_wkb([bytes(r[3]) for r in rows]), crs=4326,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    parents = frame.PARENT.unique()
    chosen = rng.choice(parents, size=min(communities, parents.size), replace=False)
    drop, extra = [], []
    for k, parent in enumerate(chosen):
        members = frame.index[frame.PARENT == parent]
        if (k % 2 == 0 or not splits) and members.size >= 2:
            drop += _merge(frame, members)
        else:
            extra += _split(frame, members)
    frame = frame.drop(index=drop)
    if extra:
        frame = gpd.GeoDataFrame(
            [*frame.itertuples(index=False), *extra], columns=frame.columns, crs=4326
        )
    return frame


def _merge(frame: gpd.GeoDataFrame, members: np.ndarray) -> list[int]:
    """Merge the first grid with a touching sibling; returns the index to drop."""
    a = members[0]
    for b in members[1:]:
        if shapely.intersects(frame.geometry[a], frame.geometry[b]):
            frame.loc[a, "geometry"] = shapely.union(frame.geometry[a], frame.geometry[b])
            return [b]
    return []


def _split(frame: gpd.GeoDataFrame, members: np.ndarray) -> list[tuple[object, ...]]:
    """Split the first grid at its centre line; the east half gets the next free code."""
    a = members[0]
    halves = split_in_two(frame.geometry[a])
    if halves is None:
        return []
    west, east = halves
    frame.loc[a, "geometry"] = west
    last = max(int(c[-3:]) for c in frame.CODE[members])
    parent = frame.PARENT[a]
    return [(f"{parent}{last + 1:03d}", f"第{last + 1}网格", parent, east)]


def naive_seconds(conn: psycopg.Connection) -> float:
    """Full re-assignment of every building and facility, rolled back; returns seconds."""
    t0 = time.perf_counter()
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute(_NAIVE_SQL.format(table="buildings", point="ST_PointOnSurface(t.geom)"))
        conn.execute(_NAIVE_SQL.format(table="facilities", point="t.geom"))
    return time.perf_counter() - t0


def main() -> None:
    """Copy the 65k database, re-divide, publish; time re-assignment and the naive peer."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--communities", type=int, default=300)
    parser.add_argument("--events", type=int, default=200_000,
                        help="events written into the copy first (0: none)")
    args = parser.parse_args()
    url = scratch_copy(bench_database(args.grids))
    with psycopg.connect(url) as conn:
        events = add_events(conn, args.events)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM buildings), (SELECT count(*) FROM persons),"
            " (SELECT count(*) FROM facilities)"
        ).fetchone()
        frame = redivide(conn, args.communities)
        conn.rollback()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "grid.gpkg"
            pyogrio.write_dataframe(frame, path, driver="GPKG")
            plan = prepare_import(conn, path, "grid")
            conn.rollback()
        t0 = time.perf_counter()
        report = commit_plan(conn, plan, description="re-division benchmark")
        commit = time.perf_counter() - t0
        peer = naive_seconds(conn)
    r = report.reassignment or {}
    d = report.diff or {}
    print(f"city: {counts}; re-division: {d.get('added')} added, {d.get('removed')} removed, "
          f"{d.get('changed')} changed grids in {args.communities} communities")  # fmt: skip
    print(f"moved: {r.get('buildings_moved')} buildings, {r.get('persons_moved')} persons, "
          f"{r.get('facilities_moved')} facilities, {r.get('workers_moved')} workers, "
          f"{r.get('events_moved')} of {events} events")
    print(f"gridmap re-assignment (set-based, inside the commit): {r.get('seconds', 0):.2f}s; "
          f"whole commit {commit:.2f}s (target re-assignment <= 20s)")
    print(f"naive full re-assignment in PostGIS (buildings + facilities): {peer:.2f}s")
    print(f"ratio gridmap/naive: {r.get('seconds', 0) / peer:.2f}")
    with psycopg.connect(make_url(url).set(database="postgres").render_as_string(
            hide_password=False), autocommit=True) as admin:  # fmt: skip
        admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')


if __name__ == "__main__":
    main()
