"""Lookups over HTTP: gridmap against a FastAPI + PostGIS-per-request peer, in one run.

Single lookups: wrk with random points over the city (req/s, p50, p99), both servers
with 2 uvicorn workers on the same 2-core machine as wrk. Batch: one CSV of N points
POSTed to /api/v1/lookup, end to end, against the PostGIS join of the same points.

    python -m benchmarks.bench_lookup_http --grids 65000 --seconds 15 --batch 1000000
"""

from __future__ import annotations

import argparse
import io
import time

import httpx
import numpy as np
import psycopg

from benchmarks.common import (
    REPO,
    bench_api_key,
    bench_database,
    free_port,
    serve_command,
    serve_gridmap,
    wrk,
)

LUA = """
wrk.headers["X-API-Key"] = "%s"
local points = {%s}
local n = #points
math.randomseed(%d)
request = function()
  local p = points[math.random(n)]
  return wrk.format("GET", "%s?lon=" .. p[1] .. "&lat=" .. p[2])
end
"""


def city_points(url: str, n: int, seed: int) -> np.ndarray:
    """Random points in the city's bounding box (some fall outside, as in real traffic)."""
    with psycopg.connect(url) as conn:
        box = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM areas WHERE level = 'district') s"
        ).fetchone()
    assert box is not None
    rng = np.random.default_rng(seed)
    return np.column_stack((rng.uniform(box[0], box[2], n), rng.uniform(box[1], box[3], n)))


def lua_script(points: np.ndarray, path: str, key: str = "") -> str:
    body = ",".join(f"{{{x:.7f},{y:.7f}}}" for x, y in points)
    return LUA % (key, body, 7, path)


def single(url: str, points: np.ndarray, seconds: int,
           connections: tuple[int, ...] = (8, 32)) -> dict[str, dict[str, float]]:
    """wrk against gridmap, then against the PostGIS peer, at each connection count."""
    results: dict[str, dict[str, float]] = {}
    started = time.monotonic()
    with serve_gridmap(url, workers=2) as base:
        # Each worker builds its index before it accepts connections; the first one up
        # tells how long that takes, so wait as long again for the second one.
        time.sleep(time.monotonic() - started)
        key = bench_api_key(url, "system")  # other systems call the lookup with a key
        httpx.get(f"{base}/api/v1/lookup", params={"lon": points[0][0], "lat": points[0][1]},
                  headers={"X-API-Key": key}).raise_for_status()
        for c in connections:
            results[f"gridmap c{c}"] = wrk(base, lua_script(points, "/api/v1/lookup", key),
                                           seconds, connections=c)
    port = free_port()
    cmd = [
        str(REPO / ".venv/bin/uvicorn"),
        "benchmarks.peer_postgis_lookup:app",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
    ]
    base = f"http://127.0.0.1:{port}"
    with serve_command(cmd, base, "/healthz", env={"PEER_DATABASE_URL": url}):
        for c in connections:
            results[f"postgis c{c}"] = wrk(base, lua_script(points, "/lookup"), seconds,
                                           connections=c)
    return results


def batch(url: str, points: np.ndarray, repeats: int = 3) -> dict[str, float]:
    """One CSV request of all ``points``: the median of ``repeats`` timed requests, after
    a small warm-up request (a running server has answered batches before)."""
    csv_body = "id,lon,lat\n" + "".join(f"{i},{x:.7f},{y:.7f}\n" for i, (x, y) in enumerate(points))
    data = csv_body.encode()
    headers = {"content-type": "text/csv", "X-API-Key": bench_api_key(url, "system")}
    timings = []
    with serve_gridmap(url, workers=1) as base, httpx.Client(timeout=600) as client:
        client.post(f"{base}/api/v1/lookup", content=data[: 1 << 20].rsplit(b"\n", 1)[0],
                    headers=headers).raise_for_status()
        for _ in range(repeats):
            started = time.perf_counter()
            resp = client.post(f"{base}/api/v1/lookup", content=data, headers=headers)
            timings.append(time.perf_counter() - started)
    gridmap_s = float(np.median(timings))
    assert resp.status_code == 200, resp.text[:500]
    lines = resp.text.count("\n") - 1
    assert lines == len(points), (lines, len(points))
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE pts (id int, lon float8, lat float8)")
        with conn.cursor().copy("COPY pts FROM STDIN WITH (FORMAT csv, HEADER)") as cp:
            cp.write(csv_body)
        out = io.StringIO()
        with conn.cursor().copy(
            "COPY (SELECT p.id, (SELECT min(a.code) FROM areas a WHERE a.level = 'grid' "
            "AND a.generation_high IS NULL AND ST_Covers(a.geom, "
            "ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))) FROM pts p ORDER BY p.id) TO STDOUT"
        ) as cp:
            for chunk in cp:
                out.write(bytes(chunk).decode())
    postgis_s = time.perf_counter() - started
    ours = [line.rsplit(",", 2)[1] for line in resp.text.splitlines()[1:]]
    theirs = [line.split("\t")[1] for line in out.getvalue().splitlines()]
    theirs = ["" if code == "\\N" else code for code in theirs]
    differ = sum(a != b for a, b in zip(ours, theirs, strict=True))
    assert differ == 0, f"{differ} answers differ from the PostGIS join"
    return {
        "points": len(points),
        "gridmap_pps": len(points) / gridmap_s,
        "postgis_pps": len(points) / postgis_s,
    }


def report_single(res: dict[str, dict[str, float]], grids: int, seconds: int) -> None:
    """Print req/s and latency of both servers and their ratio at each connection count."""
    print(f"single lookups, {grids} grids, wrk -t2 {seconds}s, 2 workers each:")
    for name, r in res.items():
        print(
            f"  {name:12s} {r['rps']:9.0f} req/s  p50 {r['p50']:6.2f} ms  "
            f"p99 {r['p99']:6.2f} ms  non-2xx {r['non2xx']:.0f}"
        )
    for name in res:
        if name.startswith("gridmap "):
            peer = res[name.replace("gridmap", "postgis")]
            ratio = res[name]["rps"] / peer["rps"]
            print(f"  ratio gridmap/postgis at {name[8:]}: {ratio:.1f}x req/s")


def report_batch(b: dict[str, float]) -> None:
    """Print batch throughput of both paths and their ratio."""
    print(f"batch CSV, {b['points']:.0f} points end to end (median of 3 requests):")
    print(
        f"  gridmap {b['gridmap_pps']:,.0f} points/s   postgis join {b['postgis_pps']:,.0f} "
        f"points/s   ratio {b['gridmap_pps'] / b['postgis_pps']:.1f}x   (answers identical)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1_000_000, help="0: skip the batch run")
    parser.add_argument("--no-single", action="store_true", help="skip the wrk runs")
    args = parser.parse_args()
    url = bench_database(args.grids)
    if not args.no_single:
        report_single(single(url, city_points(url, 10_000, seed=3), args.seconds),
                      args.grids, args.seconds)
    if args.batch:
        report_batch(batch(url, city_points(url, args.batch, seed=4)))


if __name__ == "__main__":
    main()
