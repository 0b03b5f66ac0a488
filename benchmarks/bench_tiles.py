"""Vector tiles: gridmap (uncached and cached) against tipg on the same grids, one run.

Both servers read the same ``areas`` table of a sample city in the same database: gridmap
through ``/tiles/grids/{z}/{x}/{y}.mvt``, tipg (PyPI ``tipg``, run from its own virtualenv
so its pins don't touch ours) through its ``/collections/public.areas/tiles/…`` endpoint,
filtered to ``level=grid``, on the same ``geom_3857`` column with the same three
properties (tipg's bounding-box filter gets a GiST index on that column, created here:
gridmap's own tiles filter on the ``geom`` index). The load tool is wrk (Debian
``wrk``): a fixed list of distinct z14 tiles over the city, each connection walking the
list. Both servers run the same number of uvicorn
workers (``--workers``, default 1).

All servers are started first and then measured in ``--rounds`` rounds, each running
wrk once against every server in a rotating order, so that a change in the load of a
shared machine hits all of them alike; ratios to tipg are taken within each round. The
CPU time (user+system) of each server's processes and of PostgreSQL is read from /proc
around every run. "misses via route" is gridmap with ``GRIDMAP_TILE_POOL_SIZE=0``: misses
built by the FastAPI route in a worker thread instead of on the async pool (the code
before the async miss path), as a peer in the same run.

    python -m benchmarks.bench_tiles --grids 65000 --tiles 2000 --duration 15 --rounds 3

Without ``--database-url`` the 65,000-grid sample city is built once in the embedded
cluster (``benchmarks.common.bench_database``). Without ``--tipg-python`` tipg is installed
from PyPI into ``.gridmap/tipg-venv`` the first time.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import httpx
import psycopg
from sqlalchemy.engine import make_url

from benchmarks.common import (
    bench_api_key,
    bench_database,
    free_port,
    postmaster_pid,
    process_cpu,
)

REPO = Path(__file__).resolve().parents[1]
TIPG_VENV = REPO / ".gridmap" / "tipg-venv"
Z = 14
TIPG_PATH = (
    "/collections/public.areas/tiles/WebMercatorQuad/{z}/{x}/{y}"
    "?geom-column=geom_3857&properties=code,name,parent_code&level=grid"
)
GRIDMAP_PATH = "/tiles/grids/{z}/{x}/{y}.mvt"
HEADERS: dict[str, str] = {}


def ensure_tipg(venv: Path = TIPG_VENV) -> Path:
    """The Python of a virtualenv with tipg and uvicorn, created with pip if missing."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tipg, uvicorn"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing tipg into {venv} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "tipg", "uvicorn[standard]"],
                   check=True)  # fmt: skip
    return python


def city_tiles(url: str, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` distinct z14 tiles that hold grids, spread over the city."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM areas "
            "WHERE level = 'grid' AND generation_high IS NULL ORDER BY md5(code)) AS g"
        ).fetchall()
    tiles: dict[tuple[int, int], None] = {}
    side = 1 << Z
    for lon, lat in rows:
        x = int((lon + 180.0) / 360.0 * side)
        y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * side)
        tiles[(x, y)] = None
        if len(tiles) >= n:
            break
    return list(tiles)


@contextmanager
def server(cmd: list[str], env: dict[str, str], probe: str) -> Iterator[int]:
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # gridmap builds its lookup index first
        while True:
            try:
                if httpx.get(probe, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {cmd}")
            time.sleep(0.3)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a worker stuck in shutdown
            proc.kill()
            proc.wait()


def uvicorn(python: str, app: str, port: int, workers: int) -> list[str]:
    """The uvicorn command line both servers run with (same options for both)."""
    return [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]


@contextmanager
def tipg_index(database_url: str) -> Iterator[None]:
    """A GiST index on ``areas.geom_3857`` for the length of the run, then dropped.

    tipg filters on the column it serves (geom_3857); gridmap's schema has no index
    there since migration 0014 (its tiles filter on geom), and the benchmark database
    is shared with other benchmarks that write areas.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX IF NOT EXISTS bench_tipg_areas_geom_3857 "
                     "ON areas USING gist (geom_3857)")  # fmt: skip
    try:
        yield
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS bench_tipg_areas_geom_3857")


def gridmap_server(port: int, workers: int) -> list[str]:
    return uvicorn(sys.executable, "api.main:create_app", port, workers) + ["--factory"]


def wrk(base: str, paths: list[str], duration: int, connections: int) -> float:
    """Requests per second of wrk walking ``paths`` (non-2xx responses make it fail)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "paths.lua"
        listing = ",\n".join(f'"{p}"' for p in paths)
        script.write_text(
            f"paths = {{\n{listing}\n}}\n"
            + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
            + "local i = 0\n"
            "setup = function(thread) thread:set('id', math.random(1, #paths)) end\n"
            "init = function(args) i = id or 0 end\n"
            "request = function()\n  i = i % #paths + 1\n"
            "  return wrk.format('GET', paths[i])\nend\n"
            "done = function(summary, latency, requests)\n"
            "  io.write(string.format('non2xx %d\\n', summary.errors.status))\nend\n"
        )
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", str(script), base],
            capture_output=True, text=True, check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = int(re.search(r"non2xx (\d+)", out).group(1))  # type: ignore[union-attr]
    if bad:
        raise RuntimeError(f"{bad} non-2xx responses from {base}:\n{out}")
    return rps


def warm(base: str, paths: list[str]) -> int:
    """Request every path once; returns the number of non-empty tiles."""
    filled = 0
    with httpx.Client(base_url=base, timeout=60, headers=HEADERS) as client:
        for path in paths:
            resp = client.get(path)
            resp.raise_for_status()
            filled += bool(resp.content)
    return filled


@dataclass
class Target:
    """One server under test: where it listens, what wrk walks, its process."""

    name: str
    base: str
    paths: list[str]
    pid: int = 0
    runs: list[tuple[float, float, float]] = field(default_factory=list)
    """(req/s, server CPU ms per request, PostgreSQL CPU ms per request) per round."""


def measure(target: Target, pg_pid: int | None, duration: int, connections: int) -> None:
    """One wrk run against ``target``, with the CPU its server and PostgreSQL used."""
    cpu0, pg0 = process_cpu(target.pid), process_cpu(pg_pid) if pg_pid else 0.0
    rps = wrk(target.base, target.paths, duration, connections)
    cpu1, pg1 = process_cpu(target.pid), process_cpu(pg_pid) if pg_pid else 0.0
    requests = max(rps * duration, 1.0)
    target.runs.append((rps, (cpu1 - cpu0) * 1000 / requests, (pg1 - pg0) * 1000 / requests))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=os.environ.get("GRIDMAP_DATABASE_URL"))
    ap.add_argument("--tipg-python", default=None, help="default: .gridmap/tipg-venv")
    ap.add_argument("--grids", type=int, default=65_000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of each server")
    ap.add_argument("--tiles", type=int, default=2000)
    ap.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each runs every server once, in a rotating order")
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("need wrk (apt-get install wrk)")
    args.database_url = args.database_url or bench_database(args.grids)
    # gridmap's layers need a key (tipg ignores the header); tiles are cached per scope.
    HEADERS["X-API-Key"] = bench_api_key(args.database_url)
    args.tipg_python = args.tipg_python or str(ensure_tipg())
    url = make_url(args.database_url)
    tiles = city_tiles(args.database_url, args.tiles)
    print(f"{len(tiles)} distinct z{Z} tiles over the city; {args.workers} worker(s) each; "
          f"{args.rounds} rounds of {args.duration} s per server")
    # Rate limits off, as for tipg: a cached run sends ~10,000 tiles/s from one key.
    env = {**os.environ, "GRIDMAP_DATABASE_URL": args.database_url,
           "GRIDMAP_RATE_LIMIT_PER_MINUTE": "0", "GRIDMAP_RATE_LIMIT_IP_PER_MINUTE": "0"}
    tipg_env = {
        **os.environ, "POSTGRES_USER": url.username or "", "POSTGRES_PASS": url.password or "",
        "POSTGRES_HOST": url.host or "", "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_DBNAME": url.database or "", "TIPG_DB_TABLES": '["public.areas"]',
        "TIPG_MAX_FEATURES_PER_TILE": "5000",
    }  # fmt: skip
    paths = [GRIDMAP_PATH.format(z=Z, x=x, y=y) for x, y in tiles]
    tipg_paths = [TIPG_PATH.format(z=Z, x=x, y=y) for x, y in tiles]
    uncached = {**env, "GRIDMAP_TILE_CACHE_SIZE": "0"}
    specs = [  # name, command, environment, probe path, paths
        ("tipg", uvicorn(args.tipg_python, "tipg.main:app", 0, args.workers), tipg_env,
         "/collections", tipg_paths),
        ("gridmap uncached", gridmap_server(0, args.workers), uncached, "/healthz", paths),
        ("gridmap uncached, misses via route", gridmap_server(0, args.workers),
         {**uncached, "GRIDMAP_TILE_POOL_SIZE": "0"}, "/healthz", paths),
        ("gridmap cached", gridmap_server(0, args.workers), env, "/healthz", paths),
    ]  # fmt: skip
    pg_pid = postmaster_pid(args.database_url)
    targets: list[Target] = []
    with ExitStack() as stack:
        stack.enter_context(tipg_index(args.database_url))
        for name, cmd, cmd_env, probe, walk in specs:
            port = free_port()
            cmd[cmd.index("--port") + 1] = str(port)
            target = Target(name, f"http://127.0.0.1:{port}", walk)
            target.pid = stack.enter_context(server(cmd, cmd_env, target.base + probe))
            filled = warm(target.base, walk[:200])
            print(f"{name}: {filled} of 200 sample tiles non-empty")
            targets.append(target)
        for _ in range(args.workers):  # each worker of the cached server has its own cache
            warm(targets[-1].base, paths)
        for r in range(args.rounds):
            order = targets[r % len(targets):] + targets[: r % len(targets)]
            for target in order:
                measure(target, pg_pid, args.duration, args.connections)
            report_round(r, targets)
    report(targets)


def report_round(r: int, targets: list[Target]) -> None:
    """One line per round: req/s of each server and the ratios to tipg in that round."""
    tipg = targets[0].runs[r][0]
    cells = ", ".join(f"{t.name} {t.runs[r][0]:.1f} ({t.runs[r][0] / tipg:.2f}x)"
                      for t in targets)
    print(f"round {r + 1} (load {os.getloadavg()[0]:.2f}): {cells}", flush=True)


def report(targets: list[Target]) -> None:
    """Per server: median req/s, ratio to tipg per round (median, min) and CPU a request."""
    tipg = [run[0] for run in targets[0].runs]
    print(f"{'server':36s} {'req/s':>8s} {'x tipg (median, min)':>22s} "
          f"{'server ms':>10s} {'pg ms':>7s}   CPU per request, median")
    for t in targets:
        ratios = [run[0] / base for run, base in zip(t.runs, tipg, strict=True)]
        print(f"{t.name:36s} {median(r[0] for r in t.runs):8.1f} "
              f"{median(ratios):13.2f}x {min(ratios):6.2f}x "
              f"{median(r[1] for r in t.runs):10.2f} {median(r[2] for r in t.runs):7.2f}")
    print("goals: uncached >= 3x tipg, cached >= 20x tipg (in every round)")


if __name__ == "__main__":
    main()
