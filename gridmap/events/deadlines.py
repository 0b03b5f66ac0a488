"""Deadlines in working hours, the traffic light, and escalation of overdue events.

The working calendar is data (``work_periods``: Mon–Fri 9–12, 14–18 by default), read in
the city's local time (China Standard Time, UTC+8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.models import Event, EventCategory, WorkPeriod

LOCAL_TZ = timezone(timedelta(hours=8), "CST")
YELLOW_SHARE = 0.8
"""A light turns yellow when this share of the event's time limit is used."""
ESCALATION_PATH = ("grid", "community", "street", "district")
OPEN_FOR_DEADLINE = ("accepted", "dispatched", "in_progress")


@dataclass(frozen=True)
class Calendar:
    """Working periods per weekday (0 = Monday), as (start, end) local times."""

    periods: dict[int, list[tuple[time, time]]]

    @classmethod
    def load(cls, session: Session) -> Calendar:
        """The calendar stored in ``work_periods``."""
        periods: dict[int, list[tuple[time, time]]] = {d: [] for d in range(7)}
        for row in session.scalars(select(WorkPeriod).order_by(WorkPeriod.start)):
            periods[row.weekday].append((row.start, row.end))
        return cls(periods)

    def _windows(self, start: datetime, days: int) -> list[tuple[datetime, datetime]]:
        local = start.astimezone(LOCAL_TZ)
        out = []
        for offset in range(days):
            day = (local + timedelta(days=offset)).date()
            for begin, end in self.periods.get(day.weekday(), []):
                out.append((datetime.combine(day, begin, LOCAL_TZ),
                            datetime.combine(day, end, LOCAL_TZ)))
        return out

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` working hours after ``start``."""
        left = timedelta(hours=hours)
        if not any(self.periods.values()):
            return start + left
        for begin, end in self._windows(start, 3650):
            begin = max(begin, start)
            if end <= begin:
                continue
            if end - begin >= left:
                return begin + left
            left -= end - begin
        raise ValueError("working calendar exhausted")  # unreachable with any work period

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours elapsed from ``start`` to ``end`` (0 if end <= start)."""
        if end <= start:
            return 0.0
        days = (end - start).days + 2
        total = timedelta()
        for begin, stop in self._windows(start, days):
            lo, hi = max(begin, start), min(stop, end)
            if hi > lo:
                total += hi - lo
        return total.total_seconds() / 3600


def deadline_for(calendar: Calendar, category: EventCategory, start: datetime) -> datetime:
    """When an event of ``category`` accepted at ``start`` is due."""
    if category.round_the_clock:
        return start + timedelta(hours=category.deadline_hours)
    return calendar.add_working_hours(start, category.deadline_hours)


def yellow_from(calendar: Calendar, category: EventCategory, accepted_at: datetime) -> datetime:
    """When an event of ``category`` accepted at ``accepted_at`` turns yellow.

    The one place that decides it: 80% of the category's time limit used, counted in
    working hours (wall-clock hours for round-the-clock categories). Stored in
    ``events.yellow_at`` when the event is accepted, so that the map's tiles (SQL) and
    the API show the same light.
    """
    hours = YELLOW_SHARE * (category.deadline_hours or 1)
    if category.round_the_clock:
        return accepted_at + timedelta(hours=hours)
    return calendar.add_working_hours(accepted_at, hours)


def start_clock(calendar: Calendar, category: EventCategory, now: datetime) -> dict[str, datetime]:
    """``accepted_at``, ``deadline`` and ``yellow_at`` of an event accepted at ``now``."""
    return {"accepted_at": now, "deadline": deadline_for(calendar, category, now),
            "yellow_at": yellow_from(calendar, category, now)}


def traffic_light(
    calendar: Calendar, category: EventCategory, event: Event, now: datetime
) -> str | None:
    """green under 80% of the time limit, yellow up to 100%, red overdue; None when not running.

    The ``events`` tile layer (``tiles/sql/events.sql``) applies the same rule to the
    stored ``deadline`` and ``yellow_at``.
    """
    if event.deadline is None or event.accepted_at is None:
        return None
    end = event.closed_at or event.resolved_at or now
    if end > event.deadline:
        return "red"
    turns = event.yellow_at or yellow_from(calendar, category, event.accepted_at)
    return "green" if end < turns else "yellow"


def overdue_events(session: Session, now: datetime) -> Sequence[Event]:
    """Open events (accepted … in progress) whose deadline has passed, locked for update."""
    return session.scalars(
        select(Event)
        .where(Event.status.in_(OPEN_FOR_DEADLINE), Event.deadline < now)
        .order_by(Event.id)
        .with_for_update(skip_locked=True)
    ).all()


def escalate_overdue(session: Session, now: datetime) -> list[int]:
    """Escalate every overdue event one level up (grid → community → street → district).

    Each escalation is audited (role ``system``) and restarts the time limit, so an event
    still overdue after another full limit climbs again. Returns the escalated event ids.
    """
    from gridmap.events import lifecycle

    calendar = Calendar.load(session)
    escalated = []
    for event in overdue_events(session, now):
        lifecycle.escalate(session, event, now=now, actor="scheduler", role="system",
                           note=f"deadline {event.deadline:%Y-%m-%d %H:%M} passed",
                           calendar=calendar)
        escalated.append(event.id)
    return escalated
