"""The lean write path: one statement per report, idempotency under a race, audit rows."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gridmap.events.intake import Report, store_report


def _report(lon: float, lat: float, category: str = "urban.appearance.exposed_garbage") -> Report:
    return Report(source="resident", category=category, lon=lon, lat=lat)


def test_racing_idempotency_keys_store_one_event(events_engine: Engine, clock,
                                                 grid_points) -> None:
    _, lon, lat = grid_points[50]
    factory = sessionmaker(bind=events_engine, expire_on_commit=False)
    first, second = factory(), factory()
    results: list[object] = []
    try:
        won = store_report(first, _report(lon, lat), now=clock.now(), idempotency_key="race-1")
        assert won.created
        # The second report waits on the first's uncommitted key, then finds it.
        racer = threading.Thread(target=lambda: results.append(store_report(
            second, _report(lon, lat), now=clock.now(), idempotency_key="race-1")))
        racer.start()
        racer.join(0.5)
        assert racer.is_alive(), "the racing insert must wait for the first transaction"
        first.commit()
        racer.join(10)
        lost = results[0]
        assert not lost.created and lost.event.id == won.event.id  # type: ignore[attr-defined]
        second.commit()
        assert first.scalar(text(
            "SELECT count(*) FROM events WHERE idempotency_key = 'race-1'")) == 1
    finally:
        first.close()
        second.close()


def test_one_statement_writes_event_and_ordered_audit(session: Session, clock,
                                                      grid_points) -> None:
    _, lon, lat = grid_points[60]
    stored = store_report(session, _report(lon, lat, "urban.emergency.road_collapse"),
                          now=clock.now())
    session.commit()
    event = stored.event
    row = session.execute(text("SELECT status, deadline, grid_code, ST_X(geom) x FROM events "
                               "WHERE id = :i"), {"i": event.id}).one()
    assert (row.status, row.deadline, row.grid_code) == (event.status, event.deadline,
                                                          event.grid_code)
    assert abs(row.x - lon) < 1e-12
    actions = session.scalars(text("SELECT action FROM event_transitions WHERE event_id = :i "
                                   "ORDER BY id"), {"i": event.id}).all()
    assert event.status == "dispatched"  # road collapse is accepted automatically
    assert actions == ["report", "assign", "accept", "dispatch"]


def test_photos_are_stored_with_the_event(session: Session, clock, grid_points) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    gif = b"GIF89a" + b"\x00" * 8
    _, lon, lat = grid_points[70]
    report = _report(lon, lat)
    report.photos = [png, gif]
    stored = store_report(session, report, now=clock.now())
    rows = session.execute(text("SELECT stage, content_type, data FROM event_photos "
                                "WHERE event_id = :i ORDER BY id"), {"i": stored.event.id}).all()
    assert [(r.stage, r.content_type, bytes(r.data)) for r in rows] == [
        ("report", "image/png", png), ("report", "image/gif", gif)]
    session.rollback()
