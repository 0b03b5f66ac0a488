"""Events on the map: what the open-event count and the invalidation triggers cost.

On the 65,000-grid sample city with ``--events`` events (about 40% open), one run measures:

1. grid tiles (z14 and z12, distinct tiles over the city) built by gridmap's
   ``grids.sql`` — open events counted per grid by a LATERAL count through the partial
   index — against two peers: the same tile without any count (what main served before
   events joined the map, the floor) and a LEFT JOIN on a GROUP BY aggregate of the
   events of the tile's grids (the first version of this branch);
2. events tiles (z14) through ``events.sql``;
3. single-event inserts with the ``events`` invalidation triggers on and off (the write
   cost of keeping the tile cache honest).

    python -m benchmarks.bench_mapevents --grids 65000 --events 200000 --tiles 300

Tiles are built in the database (``tiles.layers.build_tile``), no HTTP, so that the ratios
are about the SQL.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid

import psycopg
from sqlalchemy import text

from benchmarks.common import bench_database
from gridmap.db.engine import make_engine
from tiles.layers import get_layer, load_sql

CAP = 20_000
_BASE = load_sql("tiles.sql:grids.sql").text.split("counted AS")[0].rstrip().rstrip(",")
NO_COUNT = _BASE + "\nSELECT ST_AsMVT(capped.*, :layer, :extent, 'geom') FROM capped"
AGGREGATE_JOIN = _BASE + """,
open_counts AS (
  SELECT e.grid_code, count(*) AS open_events FROM events e
  WHERE e.grid_code IN (SELECT code FROM capped) AND e.status NOT IN ('closed', 'rejected')
  GROUP BY e.grid_code
)
SELECT ST_AsMVT(t.*, :layer, :extent, 'geom') FROM (
  SELECT c.geom, c.code, c.name, c.parent_code, COALESCE(n.open_events, 0) AS open_events
  FROM capped c LEFT JOIN open_counts n ON n.grid_code = c.code) AS t"""


def seed_events(url: str, n: int) -> None:
    """Fill ``events`` with ``n`` events at grid interior points (once per database)."""
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM events").fetchone()
        if have is not None and have[0] >= n:
            return
        conn.execute("DELETE FROM events")
        print(f"inserting {n:,} events …", flush=True)
        conn.execute(
            """
            INSERT INTO events (source, category_code, affair_class, priority, status, lon, lat,
              geom, description, media_urls, grid_code, generation, handler_level, queue,
              flagged, assignment_reason, escalation_level, rework_count, token, created_at,
              updated_at, assigned_at, accepted_at, deadline, yellow_at)
            SELECT 'resident', 'urban.appearance.exposed_garbage', 'collaborative', 'normal',
                   (ARRAY['closed','closed','closed','rejected','reported','dispatched',
                          'in_progress','resolved','accepted','closed'])[1 + (i %% 10)],
                   ST_X(p), ST_Y(p), p, '', '[]'::jsonb, code, 1, 'grid', 'grid', false,
                   'bench', 'grid', 0, md5(i::text), now(), now(), now(), now(),
                   now() + interval '1 day', now() + interval '19 hours'
            FROM (SELECT a.code, ST_PointOnSurface(a.geom) AS p,
                         row_number() OVER (ORDER BY a.code) AS r
                  FROM areas a WHERE a.level = 'grid') g,
                 LATERAL (SELECT g.r * 100 + k AS i FROM generate_series(1, %s) k) s
            """,
            (math.ceil(n / 65_000) if n > 65_000 else 1,),
        )
        conn.execute("ANALYZE events")


def tiles_over_city(url: str, z: int, count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct tiles at zoom ``z`` under random grid centres."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM areas "
            "WHERE level = 'grid' ORDER BY md5(code) LIMIT %s) s", (count * 4,)
        ).fetchall()
    out: dict[tuple[int, int, int], None] = {}
    n = 1 << z
    for lon, lat in rows:
        x = int((lon + 180.0) / 360.0 * n)
        y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
        out[(z, x, y)] = None
    return list(out)[:count]


def time_tiles(url: str, sql: str, layer: str, tiles: list[tuple[int, int, int]]) -> float:
    """Mean milliseconds per tile for ``sql`` (warm cache: one untimed pass first)."""
    engine = make_engine(url)
    stmt = text(sql)
    params = {"layer": layer, "extent": 4096, "buffer": 64, "margin": 64 / 4096,
              "tolerance": 0.0, "cap": CAP}
    try:
        with engine.connect() as conn:
            for rep in range(2):
                start = time.perf_counter()
                for z, x, y in tiles:
                    conn.execute(stmt, {**params, "z": z, "x": x, "y": y}).scalar()
                elapsed = time.perf_counter() - start
                if rep == 1:
                    return elapsed / len(tiles) * 1000
    finally:
        engine.dispose()
    raise AssertionError("unreachable")


def time_inserts(url: str, n: int, triggers: bool) -> float:
    """Mean milliseconds per single-row event insert (own transaction each)."""
    action = "ENABLE" if triggers else "DISABLE"
    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("inserted", "deleted", "updated"):
            conn.execute(f"ALTER TABLE events {action} TRIGGER tr_events_{name}")
        points = conn.execute(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
            "FROM areas WHERE level = 'grid' ORDER BY md5(code) LIMIT %s) s", (n,)
        ).fetchall()
        start = time.perf_counter()
        for code, lon, lat in points:
            conn.execute(
                "INSERT INTO events (source, category_code, affair_class, priority, status, "
                "lon, lat, geom, description, media_urls, grid_code, handler_level, queue, "
                "flagged, assignment_reason, escalation_level, rework_count, token, "
                "created_at, updated_at, assigned_at) VALUES ('resident', "
                "'urban.appearance.exposed_garbage', 'collaborative', 'normal', 'reported', "
                "%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), '', '[]', %s, 'grid', "
                "'grid', false, 'bench', 'grid', 0, %s, now(), now(), now())",
                (lon, lat, lon, lat, code, f"bench-{uuid.uuid4().hex}"),
            )
        elapsed = time.perf_counter() - start
        # Closed, not deleted: deleting checks events.duplicate_of (no index) per row.
        conn.execute("UPDATE events SET status = 'closed' WHERE token LIKE 'bench-%'")
        for name in ("inserted", "deleted", "updated"):
            conn.execute(f"ALTER TABLE events ENABLE TRIGGER tr_events_{name}")
    return elapsed / len(points) * 1000


def report(label: str, ours: float, peers: dict[str, float]) -> None:
    line = f"{label}: gridmap {ours:.2f} ms/tile"
    for name, ms in peers.items():
        line += f" | {name} {ms:.2f} ms ({ms / ours:.2f}x gridmap's time)"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--inserts", type=int, default=500)
    args = parser.parse_args()
    url = bench_database(args.grids)
    seed_events(url, args.events)
    with psycopg.connect(url) as conn:
        total, open_ = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status NOT IN ('closed','rejected')) "
            "FROM events").fetchone() or (0, 0)
    print(f"{args.grids:,} grids, {total:,} events ({open_:,} open)")
    grids_sql = load_sql(f"tiles.sql:{get_layer('grids').sql_file}").text
    for z in (14, 12):
        tiles = tiles_over_city(url, z, args.tiles)
        ours = time_tiles(url, grids_sql, "grids", tiles)
        peers = {"no count (main before)": time_tiles(url, NO_COUNT, "grids", tiles),
                 "LEFT JOIN on a GROUP BY aggregate": time_tiles(url, AGGREGATE_JOIN, "grids",
                                                                 tiles)}
        report(f"grids z{z} x{len(tiles)} tiles", ours, peers)
    tiles = tiles_over_city(url, 14, args.tiles)
    events_ms = time_tiles(url, load_sql("tiles.sql:events.sql").text, "events", tiles)
    print(f"events z14 x{len(tiles)} tiles: {events_ms:.2f} ms/tile")
    with_t = time_inserts(url, args.inserts, triggers=True)
    without = time_inserts(url, args.inserts, triggers=False)
    print(f"single-event insert: {with_t:.3f} ms with invalidation triggers, {without:.3f} ms "
          f"without ({with_t / without:.2f}x)")


if __name__ == "__main__":
    main()
