"""Sustained event intake over HTTP with automatic assignment, on the 65,000-grid city.

Runs, in one go:
1. gridmap: ``POST /api/v1/events`` against ``gridmap serve``-equivalent uvicorn workers,
   with ``--concurrency`` clients for ``--seconds``; latency = report → assigned response
   (assignment is synchronous, so the 201 carries grid, worker and department);
2. the peer, a naive baseline: per event a plain INSERT with a PostGIS ST_Covers join
   picking the grid (no worker, department, audit, duplicates or notification), straight
   over psycopg with the same concurrency — no HTTP at all;
then prints both rates, the ratio, p50/p99 latencies, and checks that the number of events
in the database equals the number acknowledged.

    .venv/bin/python -m benchmarks.bench_events [--grids 65000] [--seconds 20] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import psycopg

from benchmarks.common import bench_api_key, bench_database, postmaster_pid, process_cpu

REPO = Path(__file__).resolve().parents[1]
DB_NAME = "gm_bench_events"
CATEGORIES = [
    "urban.appearance.exposed_garbage", "urban.street_order.illegal_parking",
    "urban.construction.noise", "social.neighbour_dispute", "social.parking",
]


def sample_points(url: str, n: int, seed: int = 1) -> list[tuple[float, float]]:
    """``n`` random points inside the city's grids (a few percent outside, as in life)."""
    with psycopg.connect(url) as conn:
        xmin, ymin, xmax, ymax = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM areas WHERE level = 'grid') s").fetchone()
    rng = random.Random(seed)
    return [(rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)) for _ in range(n)]


def _cpu(pid: int | None) -> float:
    return process_cpu(pid) if pid is not None else float("nan")


def reset(url: str) -> None:
    """Empty the event tables (and the naive peer's) so every run starts equal."""
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE events, event_transitions, event_photos, webhook_deliveries "
                     "RESTART IDENTITY CASCADE")
        conn.execute("CREATE TABLE IF NOT EXISTS naive_events (id bigserial PRIMARY KEY, "
                     "category text, description text, geom geometry(Point, 4326), "
                     "grid_code text, created_at timestamptz DEFAULT now())")
        conn.execute("TRUNCATE naive_events")


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """uvicorn with the API, background work off, like ``gridmap serve --workers N``."""
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_SCHEDULER_INTERVAL_S": "0",
           "GRIDMAP_WEBHOOK_INTERVAL_S": "0"}
    cmd = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level",
           "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


API_KEY = ""  # set in main(): reports come from other systems with a key


def _request(port: int, i: int, lon: float, lat: float) -> bytes:
    body = orjson.dumps({"source": "resident", "category": CATEGORIES[i % len(CATEGORIES)],
                         "lon": lon, "lat": lat, "description": f"bench {i}"})
    head = (f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"X-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length framed); returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def http_load(port: int, points: list[tuple[float, float]], seconds: float,
                    concurrency: int) -> tuple[int, int, list[float], float]:
    """POST events for ``seconds``; returns (acknowledged, errors, latencies in s, elapsed).

    A minimal keep-alive HTTP/1.1 client on asyncio streams, one connection per
    concurrent client: httpx spent ~5 ms of CPU per request here, more than the server,
    on the same two cores.
    """
    latencies: list[float] = []
    acked = errors = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal acked, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                i = next(counter)
                lon, lat = points[i % len(points)]
                t0 = time.perf_counter()
                writer.write(_request(port, i, lon, lat))
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                if status == 201:
                    acked += 1
                else:
                    errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked, errors, latencies, time.perf_counter() - t0


NAIVE_SQL = (
    "INSERT INTO naive_events (category, description, geom, grid_code) "
    "SELECT %(c)s, %(d)s, p, (SELECT code FROM areas WHERE level = 'grid' "
    "AND generation_high IS NULL AND ST_Covers(geom, p) ORDER BY code LIMIT 1) "
    "FROM ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326) p"
)


def naive_load(url: str, points: list[tuple[float, float]], seconds: float,
               concurrency: int) -> tuple[int, list[float], float]:
    """The peer: one INSERT … ST_Covers per event and a commit, ``concurrency`` threads."""
    latencies: list[float] = []
    done = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        with psycopg.connect(url) as conn:
            i = offset
            while time.perf_counter() < stop:
                lon, lat = points[i % len(points)]
                t0 = time.perf_counter()
                conn.execute(NAIVE_SQL, {"c": CATEGORIES[i % 5], "d": f"naive {i}",
                                         "x": lon, "y": lat})
                conn.commit()
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    done[0] += 1
                i += concurrency

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], latencies, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1000 if values else 0.0


def main() -> None:
    """Run gridmap and the naive peer, print rates, ratio, latencies and the count check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=65000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn workers (1, like `gridmap serve`: one intake writer)")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--warmup", type=float, default=20,
                        help="seconds of untimed load first: every uvicorn worker builds its "
                             "lookup index at start-up, and /healthz answers from the first")
    args = parser.parse_args()

    global API_KEY
    url = bench_database(args.grids, name=f"{DB_NAME}_{args.grids}")  # it empties events
    points = sample_points(url, 20000)
    reset(url)
    API_KEY = bench_api_key(url, "system")
    server = start_server(url, args.port, args.workers)
    try:
        asyncio.run(http_load(args.port, points[::-1], args.warmup, args.concurrency))
        reset(url)
        postmaster = postmaster_pid(url)
        cpu0, pg0, client0 = (process_cpu(server.pid), _cpu(postmaster),
                              time.process_time())
        acked, errors, lat, elapsed = asyncio.run(
            http_load(args.port, points, args.seconds, args.concurrency))
        server_cpu = process_cpu(server.pid) - cpu0
        pg_cpu, client_cpu = _cpu(postmaster) - pg0, time.process_time() - client0
    finally:
        server.terminate()
        server.wait(30)
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assigned = conn.execute("SELECT count(*) FROM events WHERE grid_code IS NOT NULL"
                                ).fetchone()[0]
    naive, naive_lat, naive_elapsed = naive_load(url, points, args.seconds, args.concurrency)
    rate, naive_rate = acked / elapsed, naive / naive_elapsed
    print(f"grids={args.grids} seconds={args.seconds} warmup={args.warmup} "
          f"concurrency={args.concurrency} "
          f"workers={args.workers} cores={os.cpu_count()}")
    print(f"gridmap HTTP intake+assignment: {rate:,.0f} events/s  p50={pct(lat, .5):.1f} ms  "
          f"p99={pct(lat, .99):.1f} ms  acknowledged={acked} errors={errors}")
    print(f"  server CPU per acknowledged event (uvicorn workers, not PostgreSQL): "
          f"{server_cpu / max(acked, 1) * 1000:.2f} ms; PostgreSQL "
          f"{pg_cpu / max(acked, 1) * 1000:.2f} ms; this load generator "
          f"{client_cpu / max(acked, 1) * 1000:.2f} ms")
    print(f"  stored={stored} (equal to acknowledged: {stored == acked}); "
          f"assigned to a grid={assigned}, command-center queue={stored - assigned}")
    print(f"naive INSERT + ST_Covers (psycopg, no HTTP): {naive_rate:,.0f} events/s  "
          f"p50={pct(naive_lat, .5):.1f} ms  p99={pct(naive_lat, .99):.1f} ms")
    print(f"ratio gridmap/naive: {rate / naive_rate:.2f}x")


if __name__ == "__main__":
    main()
