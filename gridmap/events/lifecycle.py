"""The work-order state machine, enforced here and nowhere else.

reported → accepted (立案) | rejected → dispatched (派遣) → in_progress (处置) → resolved
(feedback) → verified (核查) → closed (结案); failed verification sends a resolved event back
to dispatched (rework, counted). Escalation, extension and suspension are actions too.
Every action is audited in ``event_transitions`` and allowed only to the roles listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal, Role
from gridmap.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from gridmap.models import Event, EventCategory, EventTransition

if TYPE_CHECKING:
    from gridmap.events.deadlines import Calendar

ROLES = ("operator", "grid_worker", "department", "reporter", "system", "admin")
HANDLERS = ("grid_worker", "department", "admin")
RUNNING = ("accepted", "dispatched", "in_progress")


@dataclass(frozen=True)
class Action:
    """An action: the states it may start from, where it leads (None = stays), who may do it."""

    sources: tuple[str, ...]
    target: str | None
    roles: tuple[str, ...]


ACTIONS: dict[str, Action] = {
    "accept": Action(("reported",), "accepted", ("operator", "system", "admin")),
    "reject": Action(("reported",), "rejected", ("operator", "admin")),
    "dispatch": Action(("accepted",), "dispatched", ("operator", "system", "admin")),
    "start": Action(("dispatched",), "in_progress", HANDLERS),
    "resolve": Action(("in_progress",), "resolved", HANDLERS),
    "verify": Action(("resolved",), "verified", ("operator", "grid_worker", "admin")),
    "fail_verification": Action(("resolved",), "dispatched", ("operator", "grid_worker", "admin")),
    "close": Action(("verified",), "closed", ("operator", "admin")),
    "escalate": Action(RUNNING, None, ("operator", "system", "admin")),
    "request_extension": Action(("dispatched", "in_progress"), None, HANDLERS),
    "extend": Action(("dispatched", "in_progress"), None, ("operator", "admin")),
    "suspend": Action(RUNNING, "suspended", ("operator", "admin")),
    "resume": Action(("suspended",), None, ("operator", "admin")),
    "rate": Action(("closed",), None, ("reporter", "operator", "admin")),
}


# Lifecycle roles a caller may act in besides their own: an admin any (e.g. recording a
# department's feedback by hand), a system key also a department (a department's own
# case system reporting its handling).
EXTRA_ROLES: dict[Role, tuple[str, ...]] = {
    Role.admin: ROLES,
    Role.system: ("department",),
}
# Callers who may name the person they act for (``actor``); others are that person.
PROXIES = (Role.admin, Role.system)


@dataclass(frozen=True)
class Acting:
    """Who an action is recorded as: audit name and lifecycle role."""

    actor: str
    role: str


def acting_as(principal: Principal, role: str | None = None,
              on_behalf_of: str | None = None) -> Acting:
    """The role and audit name of ``principal`` for a lifecycle action.

    The role is the caller's own unless ``role`` names one the caller may act in; a
    request to act otherwise is refused (PermissionDeniedError), never trusted.
    """
    own = principal.role.value
    chosen = role or own
    if chosen != own and chosen not in EXTRA_ROLES.get(principal.role, ()):
        raise PermissionDeniedError(f"a {own} caller may not act as {chosen}")
    if chosen not in ROLES:
        raise PermissionDeniedError(f"a {own} caller may not act on events")
    actor = principal.actor
    if on_behalf_of and on_behalf_of != principal.name:
        if principal.role not in PROXIES:
            raise PermissionDeniedError(f"a {own} caller acts as themself; drop 'actor'")
        actor = f"{actor} for {on_behalf_of}"
    return Acting(actor=actor, role=chosen)


def allowed_actions(status: str) -> list[str]:
    """Actions that may start from ``status``."""
    return [name for name, a in ACTIONS.items() if status in a.sources]


def get_event(session: Session, event_id: int, *, lock: bool = False) -> Event:
    """The event with ``event_id`` (optionally locked for update) or NotFoundError."""
    stmt = select(Event).where(Event.id == event_id)
    event = session.scalar(stmt.with_for_update() if lock else stmt)
    if event is None:
        raise NotFoundError(f"event {event_id} does not exist")
    return event


def record(session: Session, event: Event, action: str, from_status: str | None, *,
           now: datetime, actor: str, role: str, note: str = "") -> None:
    """Append one audit row and stamp the event as updated."""
    session.add(EventTransition(event_id=event.id, action=action, from_status=from_status,
                                to_status=event.status, actor=actor, role=role, note=note,
                                at=now))
    event.updated_at = now


def _check(event: Event, action: str, role: str) -> Action:
    if action not in ACTIONS:
        raise InvalidInputError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}",
                                details=[{"field": "action", "problem": "unknown"}])
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; known: {', '.join(ROLES)}",
                                details=[{"field": "role", "problem": "unknown"}])
    spec = ACTIONS[action]
    if event.status not in spec.sources:
        allowed = allowed_actions(event.status)
        raise ConflictError(
            f"event {event.id} is {event.status}: {action} is not allowed; "
            f"allowed: {', '.join(allowed) or 'none'}",
            details=[{"status": event.status, "allowed": allowed}],
        )
    if role not in spec.roles:
        raise ConflictError(
            f"role {role} may not {action}; roles allowed: {', '.join(spec.roles)}",
            details=[{"action": action, "roles": list(spec.roles)}],
        )
    return spec


def apply(
    session: Session,
    event: Event,
    action: str,
    *,
    now: datetime,
    actor: str,
    role: str,
    note: str = "",
    hours: float | None = None,
    rating: int | None = None,
    calendar: Calendar | None = None,
) -> Event:
    """Apply ``action`` to ``event`` as ``actor`` in ``role``; audited; errors change nothing."""
    spec = _check(event, action, role)
    before = event.status
    if action == "escalate":
        escalate(session, event, now=now, actor=actor, role=role, note=note, calendar=calendar)
        return event
    if action == "extend":
        _extend(event, hours, calendar, session)
        note = note or f"deadline extended by {hours} working hours"
    elif action == "rate":
        if rating is None or not 1 <= rating <= 5:
            raise InvalidInputError("rating must be an integer from 1 to 5",
                                    details=[{"field": "rating", "problem": "1..5"}])
        event.satisfaction = rating
    elif action == "suspend":
        event.suspended_from = before
    elif action == "resume":
        event.status = event.suspended_from or "dispatched"
        event.suspended_from = None
    if spec.target:
        event.status = spec.target
    _stamp(session, event, action, now, calendar)
    record(session, event, action, before, now=now, actor=actor, role=role, note=note)
    return event


def _stamp(session: Session, event: Event, action: str, now: datetime,
           calendar: Calendar | None) -> None:
    if action == "accept":
        for name, value in _start_clock(session, event, now, calendar).items():
            setattr(event, name, value)
    elif action == "resolve":
        event.resolved_at = now
    elif action == "fail_verification":
        event.rework_count += 1
        event.resolved_at = None
    elif action == "close":
        event.closed_at = now


def _start_clock(session: Session, event: Event, now: datetime,
                 calendar: Calendar | None) -> dict[str, datetime]:
    from gridmap.events import cache
    from gridmap.events.deadlines import Calendar, start_clock

    category = cache.category(session, event.category_code)
    assert category is not None
    return start_clock(calendar or cache.cached(session, "calendar", Calendar.load),
                       category, now)


def _deadline(session: Session, event: Event, start: datetime,
              calendar: Calendar | None) -> datetime:
    from gridmap.events import cache
    from gridmap.events.deadlines import Calendar, deadline_for

    category = cache.category(session, event.category_code)
    assert category is not None
    return deadline_for(calendar or cache.cached(session, "calendar", Calendar.load),
                        category, start)


def _extend(event: Event, hours: float | None, calendar: Calendar | None,
            session: Session) -> None:
    from gridmap.events.deadlines import Calendar

    if hours is None or hours <= 0:
        raise InvalidInputError("extend needs hours > 0",
                                details=[{"field": "hours", "problem": "must be > 0"}])
    category = session.get(EventCategory, event.category_code)
    base = event.deadline
    assert base is not None and category is not None
    if category.round_the_clock:
        event.deadline = base + timedelta(hours=hours)
    else:
        event.deadline = (calendar or Calendar.load(session)).add_working_hours(base, hours)


def escalate(session: Session, event: Event, *, now: datetime, actor: str, role: str,
             note: str = "", calendar: Calendar | None = None) -> Event:
    """Move the event one level up (grid → community → street → district), restart its limit."""
    from gridmap.events.deadlines import ESCALATION_PATH

    _check(event, "escalate", role)
    index = ESCALATION_PATH.index(event.escalation_level)
    if index + 1 < len(ESCALATION_PATH):
        event.escalation_level = ESCALATION_PATH[index + 1]
    event.deadline = _deadline(session, event, max(now, event.deadline or now), calendar)
    record(session, event, "escalate", event.status, now=now, actor=actor, role=role,
           note=f"escalated to {event.escalation_level}" + (f": {note}" if note else ""))
    return event


def transition(session: Session, event_id: int, action: str, **kwargs: object) -> Event:
    """Lock event ``event_id`` and apply ``action`` (see :func:`apply`)."""
    event = get_event(session, event_id, lock=True)
    return apply(session, event, action, **kwargs)  # type: ignore[arg-type]


def history(session: Session, event_id: int) -> list[EventTransition]:
    """The audit trail of an event, oldest first."""
    get_event(session, event_id)
    return list(session.scalars(
        select(EventTransition).where(EventTransition.event_id == event_id)
        .order_by(EventTransition.id)
    ))
