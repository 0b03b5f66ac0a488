"""A publisher killed in the middle of a long statement must not leave its server
process running that statement, holding the writers' lock, for as long as it takes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg

from gridmap.db.locks import AREAS_WRITERS

VICTIM = """
import sys, psycopg
from gridmap.db.locks import lock_areas_writers
from gridmap.db.long_writes import configure_long_write
with psycopg.connect(sys.argv[1], application_name="gm-long-write-victim") as conn:
    configure_long_write(conn)
    lock_areas_writers(conn)
    conn.execute("SELECT pg_sleep(60)")  # stands for a re-assignment of a whole city
"""


def _victim_backend(admin: psycopg.Connection) -> int | None:
    row = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name ="
                        " 'gm-long-write-victim' AND query LIKE '%pg_sleep%'").fetchone()
    return row[0] if row else None


def test_a_killed_publishers_statement_stops_within_seconds(server_url: str) -> None:
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, server_url],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    with psycopg.connect(server_url, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        while (pid := _victim_backend(admin)) is None:
            assert time.monotonic() < deadline and victim.poll() is None, "never started"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)  # no goodbye to the server: the socket closes
        victim.wait()
        killed_at = time.monotonic()
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() - killed_at < 5, "the server kept running the statement"
            time.sleep(0.05)
        locked = admin.execute("SELECT pg_try_advisory_lock(%s)", (AREAS_WRITERS,)).fetchone()
        assert locked == (True,)
        admin.execute("SELECT pg_advisory_unlock(%s)", (AREAS_WRITERS,))
