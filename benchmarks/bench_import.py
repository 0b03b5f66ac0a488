"""Import of the 65,000-grid sample shapefile (read, check, diff, commit) against
``ogr2ogr -f PostgreSQL`` of the same file, in one run; prints the ratios.

Two imports are timed: the first over the generation ``load_city`` wrote (as
``gridmap sample`` does: never checked, so every check runs on every grid), the second
over the generation the first one published (checked: overlaps and containment are
re-run only around changed grids — none here). Both run every check of issue 4.

Run: .venv/bin/python -m benchmarks.bench_import [--grids 65000]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import psycopg
import pyogrio
from sqlalchemy.engine import make_url

from benchmarks.bench_reassign import redivide
from gridmap.db import migrate
from gridmap.db.cluster import EmbeddedCluster
from gridmap.ingest.bulk import load_city
from gridmap.ingest.publish import import_file
from sample_data.city import generate_city, write_files


def _fresh_db(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return url


def _timed_import(url: str, shp: Path, label: str, commit: bool = True) -> float:
    """Wall time of one ``import_file``; prints the time per phase."""
    with psycopg.connect(url) as conn:
        marks: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        report = import_file(conn, shp, "grid", commit=commit,
                             progress=lambda _f, m: marks.append((time.perf_counter(), m)))
        ours = time.perf_counter() - t0
    print(f"{label}: {ours:.2f}s ({report.coverage}; diff "
          f"{ {k: v for k, v in (report.diff or {}).items() if isinstance(v, int)} })")
    last = t0
    for at, message in marks:  # time spent before each progress message
        print(f"  {at - last:6.2f}s  then: {message}")
        last = at
    assert report.committed == commit and report.errors == 0, report.to_text()
    return ours


def main() -> None:
    """Generate, write, load; then time gridmap import --commit and ogr2ogr."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--redivide", type=int, default=30, help="communities re-divided")
    args = parser.parse_args()
    server = EmbeddedCluster(Path(".gridmap/bench-cluster")).up()
    out = Path(".gridmap/bench-import")
    city = generate_city(grids=args.grids, seed=42)
    write_files(city, out)
    url = _fresh_db(server, "bench_import")
    migrate.upgrade(url)
    with psycopg.connect(url) as conn:
        load_city(conn, city)
    shp = out / "grid.shp"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # no autovacuum of the fresh load during the timings
        conn.execute("CHECKPOINT")
    first = _timed_import(url, shp, "first import (generation not checked: full checks)")
    second = _timed_import(url, shp, "second import (generation checked by the first)")
    dry_runs = []
    for splits, kind in ((False, "merged"), (True, "half merged, half split")):
        path = out / f"redivided-{kind[:4]}" / "grid.shp"
        path.parent.mkdir(exist_ok=True)
        with psycopg.connect(url) as conn:
            frame = redivide(conn, args.redivide, splits=splits)
        pyogrio.write_dataframe(frame, path, encoding="UTF-8")
        label = f"{args.redivide} communities re-divided ({kind}), dry run"
        dry_runs.append((label, _timed_import(url, path, label, commit=False)))
    peer_url = _fresh_db(server, "bench_ogr")
    u = make_url(peer_url)
    pg = f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username}"
    t0 = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", pg, str(shp), "-nln", "grid_ogr",
                    "-lco", "GEOMETRY_NAME=geom", "-nlt", "PROMOTE_TO_MULTI"], check=True)
    peer = time.perf_counter() - t0
    print(f"grids={args.grids} ogr2ogr -f PostgreSQL: {peer:.2f}s")
    for label, ours in (("first import --commit (full checks)", first),
                        ("second import --commit (checked generation)", second), *dry_runs):
        print(f"{label}: {ours:.2f}s; ratio gridmap/ogr2ogr: {ours / peer:.2f} "
              "(<= 1 means no slower)")
    EmbeddedCluster(Path(".gridmap/bench-cluster")).down()


if __name__ == "__main__":
    main()
