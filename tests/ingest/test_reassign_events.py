"""Open events after a grid re-division: every open status moves to the new grid and is
re-routed as intake routes a new event there (audited, webhooks told); closed and rejected
events keep their historical grid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gridmap.db.engine import make_engine
from gridmap.events import cache, lifecycle, notify
from gridmap.events.assignment import pick_worker
from gridmap.events.clock import FixedClock
from gridmap.events.deadlines import LOCAL_TZ
from gridmap.events.intake import Report, create_event
from gridmap.events.scheduler import run_deadlines
from gridmap.ingest.checks import Report as ImportReport
from gridmap.ingest.publish import import_file
from gridmap.ingest.reassign import REASSIGN_ACTION
from gridmap.lookup.service import LookupService
from gridmap.models import Event, EventTransition, Webhook, WebhookDelivery
from gridmap.models.events import CLOSED_STATUSES, EVENT_STATUSES
from sample_data.city import SampleCity
from sample_data.redivide import split_in_two
from tests.ingest.delivered import grids_as_delivered as _grids

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=LOCAL_TZ)  # a Monday, in working hours
OFFICIAL = "urban.appearance.exposed_garbage"
COLLABORATIVE = "social.parking"
FAMILY = "social.elderly_care"

# The lifecycle actions (as an admin) that bring a new event to each status.
PATHS: dict[str, tuple[str, ...]] = {
    "reported": (),
    "accepted": ("accept",),
    "rejected": ("reject",),
    "dispatched": ("accept", "dispatch"),
    "in_progress": ("accept", "dispatch", "start"),
    "resolved": ("accept", "dispatch", "start", "resolve"),
    "verified": ("accept", "dispatch", "start", "resolve", "verify"),
    "closed": ("accept", "dispatch", "start", "resolve", "verify", "close"),
    "suspended": ("accept", "dispatch", "suspend"),
}
OPEN = [s for s in EVENT_STATUSES if s not in CLOSED_STATUSES]


@dataclass
class Redivided:
    """The database after the re-division, and what was there before it."""

    engine: Engine
    report: ImportReport
    merged_into: str  # grid A, which took over grid B
    removed: str  # grid B
    split: str  # grid D, which kept its west half
    added: str  # grid N, D's east half
    before: dict[int, dict[str, Any]]  # event id → its row before the publish
    where: dict[int, str]  # event id → "B" or "N" (the part of the city it lies in)
    last_change: int  # the newest audit row before the publish


def _redivide(city: SampleCity) -> tuple[gpd.GeoDataFrame, str, str, str, str, Any]:
    """Merge grid B into A (first community); split D (another community) in two, the east
    half a new grid N. Returns (frame, A, B, D, N, N's geometry)."""
    frame = _grids(city)
    communities = list(dict.fromkeys(frame.SJDM))
    same = frame.index[frame.SJDM == communities[0]]
    a, b = same[0], same[1]
    assert shapely.touches(frame.geometry[a], frame.geometry[b])
    frame.loc[a, "geometry"] = shapely.union(frame.geometry[a], frame.geometry[b])
    other = frame.index[frame.SJDM == communities[1]]
    d = other[0]
    halves = split_in_two(frame.geometry[d])
    assert halves is not None
    west, east = halves
    frame.loc[d, "geometry"] = west
    parent = frame.SJDM[d]
    n = f"{parent}{max(int(c[-3:]) for c in frame.DM[other]) + 1:03d}"
    codes = frame.DM[a], frame.DM[b], frame.DM[d]
    frame = frame.drop(index=b)
    frame = gpd.GeoDataFrame(
        [*frame.itertuples(index=False), (n, "新网格", parent, east)],
        columns=frame.columns, crs=frame.crs,
    )
    return frame, *codes, n, east


def _event(session: Session, status: str | None, lon: float, lat: float,
           category: str = OFFICIAL) -> int:
    """A new event brought to ``status`` (None: as intake leaves it)."""
    report = Report(source="resident", category=category, lon=lon, lat=lat,
                    description=f"an event {status}")
    event = create_event(session, report, now=NOW).event
    for action in PATHS[status] if status else ():
        lifecycle.transition(session, event.id, action, now=NOW, actor="test", role="admin")
    assert event.status == (status or event.status)
    return event.id


def _row(event: Event) -> dict[str, Any]:
    return {c.name: getattr(event, c.name) for c in Event.__table__.columns}


@pytest.fixture(scope="module")
def redivided(city_factory: Callable[[], str], sample_city: SampleCity,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redivided]:
    """Events in every status in grid B and in D's east half, one of each affair class
    open in B; then a webhook is registered and the re-division published."""
    url = city_factory()
    engine = make_engine(url)
    frame, a, b, d, n, east = _redivide(sample_city)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p"
                           " FROM areas WHERE code = %s) g", (b,)).fetchone()
    assert row is not None
    in_b = (float(row[0]), float(row[1]))
    p = shapely.point_on_surface(east)
    in_n = (p.x, p.y)
    where: dict[int, str] = {}
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        for status in EVENT_STATUSES:
            where[_event(session, status, *in_b)] = "B"
            where[_event(session, status, *in_n)] = "N"
        where[_event(session, None, *in_b, category=COLLABORATIVE)] = "B"
        where[_event(session, None, *in_b, category=FAMILY)] = "B"
        session.commit()
        before = {e.id: _row(e) for e in session.scalars(select(Event))}
        assert {r["grid_code"] for i, r in before.items() if where[i] == "B"} == {b}
        assert {r["grid_code"] for i, r in before.items() if where[i] == "N"} == {d}
        session.add(Webhook(url="http://example.invalid/hook", active=True))
        session.commit()
        last_change = notify.latest_change_id(session)
    path = tmp_path_factory.mktemp("redivision") / "grid.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    with psycopg.connect(url) as conn:
        report = import_file(conn, path, "grid", commit=True)
    cache.clear()  # the active generation changed
    yield Redivided(engine, report, a, b, d, n, before, where, last_change)
    engine.dispose()


@pytest.fixture
def session(redivided: Redivided) -> Iterator[Session]:
    with sessionmaker(bind=redivided.engine)() as s:
        yield s


def _events(session: Session) -> dict[int, Event]:
    return {e.id: e for e in session.scalars(select(Event))}


def test_every_open_status_moves_closed_and_rejected_stay(
    redivided: Redivided, session: Session
) -> None:
    r = redivided
    gen = r.report.generation_id
    for event_id, event in _events(session).items():
        old = r.before[event_id]
        if event.status in CLOSED_STATUSES:
            assert (event.grid_code, event.generation, event.worker_code) == (
                old["grid_code"], old["generation"], old["worker_code"])
        else:
            new = r.merged_into if r.where[event_id] == "B" else r.added
            assert (event.grid_code, event.generation) == (new, gen), event.status
    moved = {e.status for e in _events(session).values()
             if e.grid_code != r.before[e.id]["grid_code"]}
    assert moved == set(OPEN)
    assert {"suspended", "verified"} <= moved


def test_moved_events_are_routed_as_intake_routes_a_new_event(
    redivided: Redivided, session: Session
) -> None:
    r = redivided
    picked = {grid: pick_worker(session, grid)[0] for grid in (r.merged_into, r.added)}
    assert picked[r.added] != r.before[next(i for i in r.where if r.where[i] == "N")][
        "worker_code"], "the new grid has none of the split grid's workers"
    for event in _events(session).values():
        if event.status in CLOSED_STATUSES:
            continue
        # A new report at the same place, in the same category, goes to the same hands.
        fresh = create_event(session, Report(
            source="resident", category=event.category_code, lon=event.lon, lat=event.lat,
        ), now=NOW).event
        assert (event.grid_code, event.worker_code, event.department_code,
                event.handler_level, event.queue, event.flagged) == (
            fresh.grid_code, fresh.worker_code, fresh.department_code,
            fresh.handler_level, fresh.queue, fresh.flagged), event.category_code
        expected = None if event.affair_class == "collaborative" else picked[event.grid_code]
        assert event.worker_code == expected
        assert event.assignment_reason.startswith(f"grid {event.grid_code} by location")
    session.rollback()


def test_status_deadlines_and_clocks_are_kept(redivided: Redivided, session: Session) -> None:
    kept = ("status", "suspended_from", "deadline", "yellow_at", "accepted_at", "assigned_at",
            "resolved_at", "closed_at", "created_at", "escalation_level", "rework_count",
            "category_code", "affair_class", "priority")
    events = _events(session)
    for event_id, event in events.items():
        old = redivided.before[event_id]
        assert {k: getattr(event, k) for k in kept} == {k: old[k] for k in kept}
    assert any(e.deadline is not None for e in events.values() if e.status not in CLOSED_STATUSES)


def test_each_moved_event_has_an_audit_row(redivided: Redivided, session: Session) -> None:
    r = redivided
    gen = r.report.generation_id
    rows = session.scalars(select(EventTransition).where(
        EventTransition.action == REASSIGN_ACTION)).all()
    events = _events(session)
    moved = {i for i, e in events.items() if e.status not in CLOSED_STATUSES}
    assert sorted(t.event_id for t in rows) == sorted(moved)
    for t in rows:
        event, old = events[t.event_id], r.before[t.event_id]
        assert t.from_status == t.to_status == event.status
        assert (t.actor, t.role) == ("reassignment", "system")
        assert t.note.startswith(
            f"grid {old['grid_code']} → {event.grid_code}, "
            f"worker {old['worker_code'] or 'none'} → {event.worker_code or 'none'}: "
            f"generation {gen} published; ")
    # the history an operator reads, and the live feed, show the move
    some = next(iter(moved))
    assert lifecycle.history(session, some)[-1].action == REASSIGN_ACTION
    feed = notify.changes_since(session, r.last_change, limit=1000)
    assert sorted(c["id"] for c in feed if c["kind"] == REASSIGN_ACTION) == sorted(moved)


def test_webhooks_are_told_of_each_move(redivided: Redivided, session: Session) -> None:
    deliveries = session.scalars(select(WebhookDelivery)).all()
    payloads = {d.payload["id"]: d.payload for d in deliveries
                if d.payload["kind"] == REASSIGN_ACTION}
    events = _events(session)
    assert set(payloads) == {i for i, e in events.items() if e.status not in CLOSED_STATUSES}
    for event_id, payload in payloads.items():
        assert payload == notify.summary(events[event_id], REASSIGN_ACTION)
    assert all(d.status == "pending" for d in deliveries)


def test_summary_counts_events_per_grid(redivided: Redivided) -> None:
    r = redivided
    summary = r.report.reassignment
    assert summary is not None
    from_b = sum(1 for i, w in r.where.items()
                 if w == "B" and r.before[i]["status"] not in CLOSED_STATUSES)
    from_d = sum(1 for i, w in r.where.items()
                 if w == "N" and r.before[i]["status"] not in CLOSED_STATUSES)
    assert from_b == len(OPEN) + 2 and from_d == len(OPEN)
    assert summary["events_moved"] == from_b + from_d
    assert summary["per_grid"][r.merged_into]["events"] == from_b
    assert summary["per_grid"][r.added]["events"] == from_d
    assert f"{from_b + from_d} events" in r.report.to_text()


def test_an_event_stored_by_a_lookup_not_yet_switched_is_moved_by_the_scheduler(
    city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path
) -> None:
    """A process serves the previous generation from memory until its index is rebuilt
    (seconds after the NOTIFY): a report it stores then lands in a grid the new
    generation removed — after the publisher moved the open events."""
    url = city_factory()
    engine = make_engine(url)
    stale = LookupService(url)
    stale.active()  # built before the publish, not listening
    frame, a, b, *_ = _redivide(sample_city)
    with psycopg.connect(url) as conn:
        x, y = conn.execute("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p"
                            " FROM areas WHERE code = %s) g", (b,)).fetchone()  # type: ignore[misc]  # fmt: skip
        path = tmp_path / "grid.gpkg"
        pyogrio.write_dataframe(frame, path, driver="GPKG")
        gen = import_file(conn, path, "grid", commit=True).generation_id
    now = datetime.now(LOCAL_TZ)
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        event = create_event(session, Report(source="resident", category=OFFICIAL, lon=x,
                                             lat=y), now=now, lookup=stale).event  # fmt: skip
        session.commit()
        assert (event.grid_code, event.generation) == (b, 1)  # what the stale index said
    done = run_deadlines(engine, FixedClock(now))
    with sessionmaker(bind=engine)() as session:
        moved = session.get(Event, event.id)
        assert moved is not None and (moved.grid_code, moved.generation) == (a, gen)
        (audit,) = session.scalars(select(EventTransition).where(
            EventTransition.event_id == event.id, EventTransition.action == REASSIGN_ACTION))
        assert f"grid {b} → {a}" in audit.note
    assert done["reassigned"] == 1
    assert run_deadlines(engine, FixedClock(now))["reassigned"] == 0
    engine.dispose()
