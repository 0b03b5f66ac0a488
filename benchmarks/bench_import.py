"""Import of the 65,000-grid sample shapefile (read, check, diff, commit) against
``ogr2ogr -f PostgreSQL`` of the same file, in one run; prints the ratios.

Scenarios, each run ``--repeat`` times in rounds that start with one ogr2ogr run; the
medians are compared, and so are the ratios within each round (the machine is noisy):

1. **new**: the division has districts, streets and communities but no grids yet: every
   grid is checked and written (ogr2ogr writes every row too);
2. **unchecked**: over the generation ``load_city`` wrote (as ``gridmap sample`` does:
   never checked), same grids: every check runs; the commit finds nothing changed, so it
   writes no generation and only records on the active one that its grids were checked
   (each run of it first forgets that mark);
3. **checked**: over that checked generation: overlaps and containment are re-run only
   around changed grids — none — and again no generation is written;
4. dry runs of re-divisions of ``--redivide`` communities (merges; merges and splits).

All run every check of issue 4. ogr2ogr loads into a fresh database each time. Every
run starts after a ``CHECKPOINT``: the writes of the run before (and of creating its
database) are flushed first instead of landing in whichever run comes next.

A second peer shows what the first import's write costs by itself: **ogr2ogr + INSERT**
loads the file with ogr2ogr into a scratch table of a copy of the no-grids database and
moves it into ``areas`` as a new active generation with one ``INSERT … SELECT`` — the
same rows into the same table with the same guarantees, by hand, with no checks.

Run: .venv/bin/python -m benchmarks.bench_import [--grids 65000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pyogrio
from sqlalchemy.engine import make_url

from benchmarks.bench_reassign import redivide
from benchmarks.common import fresh_database
from gridmap.db import migrate
from gridmap.db.cluster import EmbeddedCluster
from gridmap.ingest.bulk import load_city
from gridmap.ingest.publish import import_file
from sample_data.city import SampleCity, generate_city, write_files


def _settle(url: str) -> None:
    """No autovacuum of a fresh load during the timings."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    _checkpoint(url)


def _checkpoint(url: str) -> None:
    """Flush what the last run (or a ``CREATE DATABASE``) wrote, so that its disk writes
    do not land in the next run's time."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _timed_import(url: str, shp: Path, label: str, commit: bool = True) -> float:
    """Wall time of one ``import_file``; prints the time per phase."""
    _checkpoint(url)
    with psycopg.connect(url) as conn:
        marks: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        report = import_file(conn, shp, "grid", commit=commit,
                             progress=lambda _f, m: marks.append((time.perf_counter(), m)))
        ours = time.perf_counter() - t0
    diff = {k: v for k, v in (report.diff or {}).items() if isinstance(v, int)}
    print(f"{label}: {ours:.2f}s ({report.coverage}; diff {diff})")
    last, phases = t0, []
    for at, message in marks:  # time spent before each progress message
        phases.append(f"{at - last:.2f}s→{message}")
        last = at
    print("    " + ", ".join(phases))
    assert report.committed == commit and report.errors == 0, report.to_text()
    return ours


def _without_grids(city: SampleCity) -> SampleCity:
    """The city's areas above the grids; no buildings, people, facilities or workers."""
    return dataclasses.replace(
        city, areas=city.areas[city.areas.level != "grid"],
        buildings=city.buildings.iloc[:0], households=city.households.iloc[:0],
        persons=city.persons.iloc[:0], facilities=city.facilities.iloc[:0],
        workers=city.workers.iloc[:0],
    )  # fmt: skip


def _unmark(url: str) -> None:
    """Forget that the active generation was checked (as after ``gridmap sample``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE generations SET checked_levels = '{}' WHERE active")


def _ogr2ogr_into(url: str, shp: Path) -> None:
    u = make_url(url)
    pg = f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username}"
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", pg, str(shp), "-nln", "grid_ogr",
                    "-lco", "GEOMETRY_NAME=geom", "-nlt", "PROMOTE_TO_MULTI"], check=True)


def _ogr2ogr(server: str, shp: Path) -> float:
    url = fresh_database(server, "bench_ogr")
    _checkpoint(url)
    t0 = time.perf_counter()
    _ogr2ogr_into(url, shp)
    seconds = time.perf_counter() - t0
    print(f"ogr2ogr -f PostgreSQL: {seconds:.2f}s")
    return seconds


_NEW_LABEL = "new: first import of the grids (all rows written)"
_BY_HAND_LABEL = "peer: ogr2ogr + INSERT into areas (same rows, same table, no checks)"
_BY_HAND = """
INSERT INTO generations (description, active) VALUES ('by hand', false);
INSERT INTO areas (code, level, name, parent_code, generation_low, geom, geom_3857)
SELECT code, 'grid', name, parent, currval('generations_id_seq'), geom,
       ST_Transform(geom, 3857)
FROM grid_ogr;
UPDATE generations SET active = false WHERE active;
UPDATE generations SET active = true WHERE id = currval('generations_id_seq');
DROP TABLE grid_ogr;
"""


def _ogr2ogr_by_hand(server: str, shp: Path) -> float:
    """ogr2ogr into a scratch table, then one INSERT into ``areas`` (no checks)."""
    url = fresh_database(server, "bench_ogr_areas", template="bench_import_nogrids")
    _checkpoint(url)
    t0 = time.perf_counter()
    _ogr2ogr_into(url, shp)
    with psycopg.connect(url) as conn:
        conn.execute(_BY_HAND)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    print(f"ogr2ogr + INSERT into areas: {seconds:.2f}s")
    return seconds


def main() -> None:
    """Generate, write, load; then time the imports and ogr2ogr, interleaved."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--redivide", type=int, default=30, help="communities re-divided")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario")
    args = parser.parse_args()
    server = EmbeddedCluster(Path(".gridmap/bench-cluster")).up()
    out = Path(".gridmap/bench-import")
    city = generate_city(grids=args.grids, seed=42)
    write_files(city, out)
    shp = out / "grid.shp"
    empty = fresh_database(server, "bench_import_nogrids")
    migrate.upgrade(empty)
    with psycopg.connect(empty) as conn:
        load_city(conn, _without_grids(city))
    _settle(empty)
    url = fresh_database(server, "bench_import")
    migrate.upgrade(url)
    with psycopg.connect(url) as conn:
        load_city(conn, city)
    _settle(url)
    redivided = []
    for splits, kind in ((False, "merged"), (True, "half merged, half split")):
        path = out / f"redivided-{kind[:4]}" / "grid.shp"
        path.parent.mkdir(exist_ok=True)
        with psycopg.connect(url) as conn:
            pyogrio.write_dataframe(redivide(conn, args.redivide, splits=splits), path,
                                    encoding="UTF-8")  # fmt: skip
        redivided.append((f"{args.redivide} communities re-divided ({kind}), dry run", path))

    def new() -> float:
        target = fresh_database(server, "bench_import_new", template="bench_import_nogrids")
        return _timed_import(target, shp, "new: no grids yet (all checks, 65,000 rows written)")

    def unchecked() -> float:
        _unmark(url)
        return _timed_import(url, shp, "unchecked: over an unchecked generation (all checks)")

    def checked() -> float:
        return _timed_import(url, shp, "checked: over the generation the last import checked")

    scenarios: list[tuple[str, Callable[[], float]]] = [
        (_BY_HAND_LABEL, lambda: _ogr2ogr_by_hand(server, shp)),
        (_NEW_LABEL, new),
        ("unchecked: re-import over an unchecked generation", unchecked),
        ("checked: re-import over a checked generation", checked),
        *[(label, lambda p=path, lab=label: _timed_import(url, p, lab, commit=False))
          for label, path in redivided],
    ]  # fmt: skip
    times: dict[str, list[float]] = {label: [] for label, _ in scenarios}
    peer: list[float] = []
    for _ in range(args.repeat):  # interleaved, so drifting load hits both sides alike
        peer.append(_ogr2ogr(server, shp))
        for label, run in scenarios:
            times[label].append(run())
    ogr = statistics.median(peer)
    print(f"\ngrids={args.grids}, {args.repeat} runs each; ogr2ogr median {ogr:.2f}s "
          f"(runs {', '.join(f'{t:.2f}' for t in peer)})")
    for label, runs in times.items():
        ours = statistics.median(runs)
        paired = statistics.median(t / p for t, p in zip(runs, peer, strict=True))
        print(f"{label}: median {ours:.2f}s (runs {', '.join(f'{t:.2f}' for t in runs)}); "
              f"ratio gridmap/ogr2ogr {ours / ogr:.2f}, median of the rounds' own ratios "
              f"{paired:.2f} (<= 1 means no slower)")
    by_hand, new_runs = times[_BY_HAND_LABEL], times[_NEW_LABEL]
    print(f"new / ogr2ogr + INSERT into areas: median of the rounds' own ratios "
          f"{statistics.median(t / p for t, p in zip(new_runs, by_hand, strict=True)):.2f}")
    EmbeddedCluster(Path(".gridmap/bench-cluster")).down()


if __name__ == "__main__":
    main()
