"""Cost of authenticating a request: gridmap's in-memory key cache vs a query per request.

The peer is what a straightforward implementation does: look the key's hash up in
PostgreSQL on every request (one indexed SELECT on ``api_keys``, connection pooled).
Both run in the same process against the same database, on the same 1,000 keys.

    .venv/bin/python -m benchmarks.bench_auth [--requests 20000]
"""

from __future__ import annotations

import argparse
import random
import time

import psycopg
from sqlalchemy import text

from benchmarks.common import fresh_database
from gridmap.auth import store
from gridmap.auth.cache import PrincipalCache
from gridmap.db import migrate
from gridmap.db.engine import libpq_url, make_engine, session_scope

DB = "gridmap_bench_auth"


def _database() -> str:
    url = fresh_database(libpq_url(), DB)
    migrate.upgrade(url)
    return url


def main() -> None:
    """Create 1,000 keys, authenticate N random ones both ways, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    url = _database()
    engine = make_engine(url)
    with session_scope(engine) as session:
        secrets = [store.create_key(session, f"k{i}", "system").secret for i in range(1000)]
    picks = [random.Random(1).choice(secrets) for _ in range(args.requests)]
    cache = PrincipalCache(engine, ttl_s=2.0)
    cache.by_key(picks[0])  # first load
    t0 = time.perf_counter()
    for key in picks:
        assert cache.by_key(key) is not None
    cached = time.perf_counter() - t0
    query = text("SELECT id, role, area_code FROM api_keys "
                 "WHERE key_hash = :h AND revoked_at IS NULL")  # fmt: skip
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for key in picks:
            assert conn.execute(query, {"h": store.hash_key(key)}).first() is not None
    per_query = time.perf_counter() - t0
    n = args.requests
    print(f"requests: {n:,}")
    print(f"gridmap cache:        {cached / n * 1e6:8.1f} µs/request  {n / cached:12,.0f}/s")
    print(f"query per request:    {per_query / n * 1e6:8.1f} µs/request  {n / per_query:12,.0f}/s")
    print(f"ratio (query / cache): {per_query / cached:.1f}x")
    engine.dispose()
    with psycopg.connect(libpq_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
