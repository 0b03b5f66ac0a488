"""Intake, assignment and the full lifecycle with rework and escalation, under a fixed clock."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridmap.errors import ConflictError, InvalidInputError
from gridmap.events import lifecycle
from gridmap.events.assignment import locate_grid
from gridmap.events.clock import FixedClock
from gridmap.events.deadlines import Calendar, escalate_overdue, traffic_light
from gridmap.events.intake import Report, create_event
from gridmap.lookup.crs import wgs84_to_gcj02
from gridmap.models import Event, EventCategory, EventTransition

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _report(lon: float, lat: float, category: str = "urban.appearance.exposed_garbage",
            **kw: object) -> Report:
    return Report(source="resident", category=category, lon=lon, lat=lat,
                  reporter_name="张三", reporter_phone="13812345678", **kw)  # type: ignore[arg-type]


def test_locate_grid_matches_postgis_rule(session: Session, grid_points) -> None:
    code, lon, lat = grid_points[5]
    assert locate_grid(session, lon, lat, 1) == code
    assert locate_grid(session, 0.0, 0.0, 1) is None


def test_shared_vertex_goes_to_lowest_code(session: Session) -> None:
    row = session.execute(text(
        "SELECT ST_X(d.geom), ST_Y(d.geom) FROM areas a, ST_DumpPoints(a.geom) d "
        "WHERE a.level = 'grid' AND (SELECT count(*) FROM areas b WHERE b.level = 'grid' "
        "AND ST_Covers(b.geom, d.geom)) >= 2 LIMIT 1"
    )).first()
    assert row is not None, "the sample city has grids sharing vertices"
    lon, lat = row
    covering = session.scalars(text(
        "SELECT code FROM areas WHERE level = 'grid' AND "
        "ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) ORDER BY code"
    ), {"x": lon, "y": lat}).all()
    assert len(covering) >= 2
    assert locate_grid(session, lon, lat, 1) == covering[0]


def test_intake_assigns_grid_worker_and_department_with_reason(
    session: Session, clock: FixedClock, grid_points
) -> None:
    code, lon, lat = grid_points[10]
    result = create_event(session, _report(lon, lat, photos=[PNG]), now=clock.now())
    session.commit()
    event = result.event
    assert result.created and event.status == "reported"
    assert event.grid_code == code and event.generation == 1
    assert event.department_code == "sanitation"
    assert event.worker_code is not None
    assert f"grid {code} by location" in event.assignment_reason
    assert "on duty" in event.assignment_reason or "leader" in event.assignment_reason
    worker = session.execute(text(
        "SELECT w.role, w.on_duty FROM workers w WHERE w.code = :c"), {"c": event.worker_code}
    ).one()
    assert worker.on_duty or worker.role == "grid_leader"


def test_worker_falls_back_to_leader_then_community(session: Session, clock, grid_points) -> None:
    code, lon, lat = grid_points[20]
    session.execute(text(
        "UPDATE workers SET on_duty = false WHERE id IN "
        "(SELECT worker_id FROM worker_assignments WHERE grid_code = :g) "
        "AND role <> 'grid_leader'"), {"g": code})
    event = create_event(session, _report(lon, lat, "social.neighbour_dispute"),
                         now=clock.now()).event
    assert event.handler_level == "community" and event.worker_code is None
    family = create_event(session, _report(lon, lat, "social.care_check",
                                           description="x"), now=clock.now()).event
    leader = session.scalar(text(
        "SELECT w.code FROM workers w JOIN worker_assignments a ON a.worker_id = w.id "
        "WHERE w.role = 'grid_leader' AND a.grid_code LIKE :c ORDER BY w.on_duty DESC, w.code"
    ), {"c": code[:12] + "%"})
    assert family.worker_code == leader
    assert "grid leader" in family.assignment_reason
    assert family.department_code is None
    session.rollback()


def test_component_event_goes_to_facility_maintainer(session: Session, clock) -> None:
    fac = session.execute(text(
        "SELECT code, maintainer_department_code, ST_X(geom) x, ST_Y(geom) y FROM facilities "
        "WHERE major_code = '01' AND minor_code = '04' LIMIT 1")).one()
    event = create_event(session, _report(fac.x, fac.y, "component.manhole_damaged",
                                          facility_code=fac.code), now=clock.now()).event
    assert event.department_code == fac.maintainer_department_code == "gas"
    assert f"facility {fac.code}" in event.assignment_reason
    session.rollback()


def test_outside_every_grid_is_flagged_for_command_center(session: Session, clock) -> None:
    event = create_event(session, _report(100.0, 20.0), now=clock.now()).event
    session.commit()
    assert event.id is not None and event.flagged
    assert event.queue == "command_center" and event.grid_code is None


def test_gcj02_input_is_converted_before_assignment(session: Session, clock, grid_points) -> None:
    code, lon, lat = grid_points[30]
    glon, glat = map(float, wgs84_to_gcj02(lon, lat))
    event = create_event(session, _report(glon, glat, crs="gcj02"), now=clock.now()).event
    assert event.grid_code == code
    assert abs(event.lon - lon) < 1e-6 and abs(event.lat - lat) < 1e-6
    session.rollback()


def test_idempotency_key_returns_the_original(session: Session, clock, grid_points) -> None:
    _, lon, lat = grid_points[40]
    first = create_event(session, _report(lon, lat), now=clock.now(), idempotency_key="k-1")
    session.commit()
    again = create_event(session, _report(lon + 0.01, lat), now=clock.now(),
                         idempotency_key="k-1")
    assert not again.created and again.event.id == first.event.id
    assert session.scalar(text("SELECT count(*) FROM events WHERE idempotency_key = 'k-1'")) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"category": "urban.nope"}, "category"),
        ({"category": "urban"}, "category"),
        ({"lon": 200.0}, "lon/lat"),
        ({"photos": [b"not an image"]}, "photos[0]"),
        ({"facility_code": "5001060101999999"}, "facility_code"),
        ({"source": "pigeon"}, "source"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    session: Session, clock, grid_points, change: dict, field: str
) -> None:
    _, lon, lat = grid_points[50]
    before = session.scalar(text("SELECT count(*) FROM events"))
    report = _report(lon, lat)
    for key, value in change.items():
        setattr(report, key, value)
    with pytest.raises(InvalidInputError) as info:
        create_event(session, report, now=clock.now())
    assert info.value.details[0]["field"] == field
    session.rollback()
    assert session.scalar(text("SELECT count(*) FROM events")) == before


def _act(session: Session, event_id: int, action: str, role: str, clock: FixedClock,
         **kw: object) -> Event:
    event = lifecycle.transition(session, event_id, action, now=clock.now(), actor=f"{role}-1",
                                 role=role, **kw)
    session.commit()
    return event


def test_full_lifecycle_with_rework_and_escalation(session: Session, clock, grid_points) -> None:
    _, lon, lat = grid_points[60]
    event = create_event(session, _report(lon, lat), now=clock.now()).event  # 8 working hours
    session.commit()
    eid = event.id
    with pytest.raises(ConflictError) as info:
        _act(session, eid, "start", "grid_worker", clock)
    assert "allowed: accept, reject" in info.value.message
    session.rollback()
    with pytest.raises(ConflictError, match="roles allowed"):
        _act(session, eid, "accept", "reporter", clock)
    session.rollback()

    event = _act(session, eid, "accept", "operator", clock)
    # Monday 10:00 + 8 working hours (10-12, 14-18, 9-11) = Tuesday 11:00.
    assert event.deadline == clock.now() + timedelta(days=1, hours=1)
    calendar = Calendar.load(session)
    category = session.get(EventCategory, event.category_code)
    assert traffic_light(calendar, category, event, clock.now()) == "green"
    _act(session, eid, "dispatch", "operator", clock)
    clock.advance(hours=4)  # Monday 14:00: 2 of 8 working hours used
    _act(session, eid, "start", "grid_worker", clock)
    clock.advance(hours=3, minutes=30)  # Monday 17:30 — 5.5 h used: green
    assert traffic_light(calendar, category, event, clock.now()) == "green"
    clock.advance(hours=16)  # Tuesday 9:30 — 6.5 h: yellow (>= 80%)
    assert traffic_light(calendar, category, event, clock.now()) == "yellow"
    _act(session, eid, "resolve", "grid_worker", clock, note="cleaned")
    _act(session, eid, "fail_verification", "operator", clock, note="still dirty")
    event = session.get(Event, eid)
    assert event.status == "dispatched" and event.rework_count == 1
    _act(session, eid, "start", "grid_worker", clock)

    clock.advance(hours=2)  # Tuesday 11:30: past the 11:00 deadline
    assert traffic_light(calendar, category, event, clock.now()) == "red"
    assert eid in escalate_overdue(session, clock.now())
    session.commit()
    session.refresh(event)
    assert event.escalation_level == "community" and event.deadline > clock.now()
    assert eid not in escalate_overdue(session, clock.now())  # not overdue again yet
    clock.advance(days=2)
    escalate_overdue(session, clock.now())
    session.commit()
    session.refresh(event)
    assert event.escalation_level == "street"

    _act(session, eid, "resolve", "grid_worker", clock)
    _act(session, eid, "verify", "grid_worker", clock)
    _act(session, eid, "close", "operator", clock)
    with pytest.raises(ConflictError, match="allowed: rate"):
        _act(session, eid, "accept", "operator", clock)
    session.rollback()
    event = _act(session, eid, "rate", "reporter", clock, rating=4)
    assert event.status == "closed" and event.satisfaction == 4
    trail = session.scalars(select(EventTransition.action).where(
        EventTransition.event_id == eid).order_by(EventTransition.id)).all()
    assert trail == ["report", "assign", "accept", "dispatch", "start", "resolve",
                     "fail_verification", "start", "escalate", "escalate", "resolve",
                     "verify", "close", "rate"]


def test_suspend_resume_and_extension(session: Session, clock, grid_points) -> None:
    _, lon, lat = grid_points[70]
    eid = create_event(session, _report(lon, lat, "urban.construction.noise"),
                       now=clock.now()).event.id
    session.commit()
    _act(session, eid, "accept", "operator", clock)
    event = _act(session, eid, "dispatch", "operator", clock)
    due = event.deadline
    _act(session, eid, "request_extension", "department", clock, note="need parts")
    event = _act(session, eid, "extend", "operator", clock, hours=7)
    assert event.deadline == due + timedelta(days=1)  # 7 working hours = one working day
    event = _act(session, eid, "suspend", "operator", clock)
    assert event.status == "suspended"
    with pytest.raises(ConflictError, match="allowed: resume"):
        _act(session, eid, "start", "department", clock)
    session.rollback()
    event = _act(session, eid, "resume", "operator", clock)
    assert event.status == "dispatched"


def test_auto_accept_category_is_dispatched_at_once(session: Session, clock, grid_points) -> None:
    _, lon, lat = grid_points[80]
    event = create_event(session, _report(lon, lat, "urban.emergency.road_collapse"),
                         now=clock.now()).event
    assert event.status == "dispatched" and event.department_code == "transport"
    assert event.deadline == clock.now() + timedelta(hours=2)  # round the clock
    session.rollback()


def test_duplicate_is_linked_to_the_open_original(session: Session, clock, grid_points) -> None:
    _, lon, lat = grid_points[90]
    first = create_event(session, _report(lon, lat, "urban.advertising.illegal_ad"),
                         now=clock.now()).event
    session.commit()
    clock.advance(hours=2)
    near = create_event(session, _report(lon + 0.0001, lat, "urban.advertising.illegal_ad"),
                        now=clock.now())
    assert near.original is not None and near.event.duplicate_of == first.id
    far = create_event(session, _report(lon + 0.01, lat, "urban.advertising.illegal_ad"),
                       now=clock.now())
    assert far.original is None
    other = create_event(session, _report(lon, lat, "urban.construction.debris"),
                         now=clock.now())
    assert other.original is None
    clock.advance(hours=30)  # outside the 24 h window
    late = create_event(session, _report(lon, lat, "urban.advertising.illegal_ad"),
                        now=clock.now())
    assert late.original is None
    session.rollback()


def test_reporter_contact_is_masked(session: Session, clock, grid_points, events_db) -> None:
    from gridmap.events.views import event_dict

    _, lon, lat = grid_points[100]
    event = create_event(session, _report(lon, lat), now=clock.now()).event
    body = event_dict(event)
    assert body["reporter"]["phone"] == "138****5678"
    assert body["reporter"]["name"] == "张*"
    session.rollback()
    with psycopg.connect(events_db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] >= 1
