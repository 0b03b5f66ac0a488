"""Concurrent intake transactions (several API processes) do not deadlock each other."""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy import Engine

from gridmap.db.engine import session_factory
from gridmap.events.intake import Report, store_report


def _report(point: tuple[str, float, float]) -> Report:
    _, lon, lat = point
    return Report(source="resident", category="urban.appearance.exposed_garbage", lon=lon,
                  lat=lat, description="race")


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_concurrent_intake_transactions_do_not_deadlock(events_engine: Engine, events_db,
                                                        grid_points, clock) -> None:
    """Two API processes store at once; the events trigger bumps two layer_versions rows
    (migration 0012_layer_lock_order: before it, ~2% of these deadlocked)."""
    before, errors = _count(events_db), []

    def work(offset: int) -> None:
        for i in range(25):
            session = session_factory(events_engine)()
            try:
                store_report(session, _report(grid_points[offset + 8 * i]),
                             now=clock.now())
                session.commit()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
            finally:
                session.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(events_db) == before + 200
