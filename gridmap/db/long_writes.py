"""Settings of a long writing transaction: an import's commit, the bulk loader."""

from __future__ import annotations

import psycopg

CLIENT_CHECK_INTERVAL = "1s"


def configure_long_write(conn: psycopg.Connection) -> None:
    """For the rest of ``conn``'s transaction: no statement time limit (publishing
    65,000 grids takes seconds, a whole city minutes), and the server checks every
    ``CLIENT_CHECK_INTERVAL`` whether the client's socket was closed. Without that check
    a publisher killed in the middle of a statement (re-assignment, a COPY) leaves its
    server process finishing the abandoned statement, holding the writers' lock, for as
    long as the statement takes. (A client host that vanishes without closing the
    socket is TCP keepalive's to notice, not this check's.)"""
    conn.execute("SET LOCAL statement_timeout = 0")
    conn.execute(f"SET LOCAL client_connection_check_interval = '{CLIENT_CHECK_INTERVAL}'")
