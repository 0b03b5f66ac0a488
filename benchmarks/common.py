"""Shared benchmark plumbing: a 65,000-grid sample-city database, servers, free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from gridmap.db import migrate
from gridmap.db.engine import libpq_url
from gridmap.ingest.bulk import load_city

REPO = Path(__file__).resolve().parents[1]


def bench_database(grids: int = 65_000, seed: int = 42, name: str | None = None) -> str:
    """URL of a database holding the sample city of ``grids`` grids (built once, reused).

    ``name``: a database of its own, for a benchmark that changes what it holds.
    """
    server = libpq_url()
    name = name or f"gridmap_bench_{grids}_{seed}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate.upgrade(url)
    with psycopg.connect(url) as conn:
        loaded = conn.execute("SELECT count(*) FROM areas WHERE level = 'grid'").fetchone()
        if loaded is None or loaded[0] != grids:
            from sample_data.city import generate_city

            print(f"building the {grids}-grid sample city in {name} …", file=sys.stderr)
            load_city(conn, generate_city(grids=grids, seed=seed), replace=True)
    return url


def fresh_database(server: str, name: str, template: str | None = None) -> str:
    """URL of database ``name`` on ``server``, dropped and created anew: a copy of
    ``template`` (seconds, not minutes), or empty with PostGIS."""
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    if template is None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return url


def bench_api_key(url: str, role: str = "admin") -> str:
    """A fresh API key in the benchmark database (benchmarks call the API like a system)."""
    from gridmap.auth import store
    from gridmap.db.engine import make_engine, session_scope

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return store.create_key(session, f"bench-{os.getpid()}", role).secret
    finally:
        engine.dispose()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants (Linux /proc).

    Children that exited and were reaped count through their parent's cutime/cstime
    (e.g. PostgreSQL backends of connections closed during the run). On a shared, loaded
    machine throughput follows the neighbours; CPU per request does not.
    """
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / tick
        stack += [int(c) for c in children]
    return total


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's process id when it runs on this machine (for its CPU)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        backend = Path(f"/proc/{row[0]}/stat").read_text() if row else ""
        return int(backend.rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_gridmap(url: str, workers: int = 2, timeout: float = 300) -> Iterator[str]:
    """Run ``gridmap serve`` on a free port against ``url``; yields the base URL."""
    port = free_port()
    # Rate limits off: the peers have none, and a benchmark is one key at full speed.
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url,
           "GRIDMAP_RATE_LIMIT_PER_MINUTE": "0", "GRIDMAP_RATE_LIMIT_IP_PER_MINUTE": "0"}
    cmd = [str(REPO / ".venv/bin/gridmap"), "serve", "--port", str(port), "--workers", str(workers)]
    with _server(cmd, env, f"http://127.0.0.1:{port}", "/healthz", timeout) as base:
        yield base


@contextmanager
def _server(
    cmd: list[str], env: dict[str, str], base: str, probe: str, timeout: float
) -> Iterator[str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(base + probe, proc, timeout)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def serve_command(
    cmd: list[str],
    base: str,
    probe: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[str]:
    """Run any server command; yields ``base`` once ``probe`` answers."""
    with _server(cmd, {**os.environ, **(env or {})}, base, probe, timeout) as b:
        yield b


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers 200, or fail with the server's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited early: {err[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


def wrk(
    url: str,
    lua: str,
    seconds: int = 15,
    threads: int = 2,
    connections: int = 32,
    workdir: Path | None = None,
) -> dict[str, float]:
    """Run wrk with a Lua script; returns req/s, p50 and p99 latency in ms."""
    script = (workdir or Path("/tmp")) / f"gridmap-wrk-{os.getpid()}.lua"
    script.write_text(lua)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50/p99 (ms) and non-2xx count from wrk's --latency output."""
    result: dict[str, float] = {"non2xx": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif parts[:1] in (["50%"], ["99%"]):
            result["p" + parts[0].rstrip("%")] = _ms(parts[1])
        elif "Non-2xx" in line:
            result["non2xx"] = float(parts[-1])
    return result


def _ms(value: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)
