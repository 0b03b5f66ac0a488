"""Advisory locks shared by the code and the schema.

``AREAS_WRITERS``: held for the rest of the transaction by anyone who writes
``areas`` — the publishers (:mod:`gridmap.ingest.publish`), the bulk loader
(:mod:`gridmap.ingest.bulk`) and, for any other writer, a statement-level trigger
(migration ``0013_code_ranges_per_statement``, which spells the same number). Writers
take it before any table or row lock, so that two of them never wait on each other
in opposite orders.
"""

from __future__ import annotations

import psycopg

AREAS_WRITERS = 0x6772_6964


def lock_areas_writers(conn: psycopg.Connection) -> None:
    """Wait for, then hold until the transaction ends, the areas writers' lock."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AREAS_WRITERS,))
