"""Event intake: validate, assign, link duplicates, audit, notify — in one transaction.

A repeat with the same idempotency key returns the original event. Nothing is stored
unless everything is valid.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal, Role
from gridmap.errors import InvalidInputError, PermissionDeniedError
from gridmap.events import cache, lifecycle, notify
from gridmap.events.assignment import assign
from gridmap.events.deadlines import Calendar, start_clock
from gridmap.events.duplicates import find_original_rows
from gridmap.generations import active_generation_id
from gridmap.lookup import crs as lookup_crs
from gridmap.lookup.service import LookupService
from gridmap.models import Event, EventCategory, EventPhoto, Facility
from gridmap.models.events import EVENT_SOURCES

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 9
MAX_DESCRIPTION = 4000
ROLE_OF_SOURCE = {
    "resident": "reporter",
    "grid_worker": "grid_worker",
    "sensor": "system",
    "hotline": "operator",
    "external": "system",
}
# Sources a role may file under; roles not listed may use every source.
SOURCES_OF_ROLE = {
    Role.reporter: ("resident",),
    Role.grid_worker: ("grid_worker", "resident"),
}
_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


@dataclass
class Report:
    """What a reporter tells us. Coordinates are in ``crs`` (wgs84, cgcs2000 or gcj02)."""

    source: str
    category: str
    lon: float
    lat: float
    crs: str = "wgs84"
    description: str = ""
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_email: str | None = None
    facility_code: str | None = None
    device_id: str | None = None
    household_id: int | None = None
    priority: str | None = None
    affair_class: str | None = None
    media_urls: list[str] = field(default_factory=list)
    photos: list[bytes] = field(default_factory=list)


@dataclass
class IntakeResult:
    """The stored event, whether this call created it, and the original if a duplicate."""

    event: Event
    created: bool
    original: Event | None = None


# Report CRS names → gridmap.lookup.crs names (the one converter of the codebase).
_CRS_NAMES = {"wgs84": "4326", "cgcs2000": "4490"}
_AS_IS = frozenset({"4326", "4490", "epsg:4326", "epsg:4490"})


def to_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Report coordinates in ``crs`` (wgs84, cgcs2000, gcj02, bd09, EPSG codes) as WGS84."""
    name = _CRS_NAMES.get(crs.lower(), crs.lower())
    if name in _AS_IS:
        return lon, lat
    x, y = lookup_crs.to_wgs84(lon, lat, name)
    return float(x), float(y)


def _bad(field_name: str, message: str) -> InvalidInputError:
    return InvalidInputError(message, details=[{"field": field_name, "problem": message}])


def image_type(data: bytes) -> str | None:
    """The image media type of ``data`` from its signature, or None if it is no image."""
    for signature, media_type in _SIGNATURES.items():
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load_category(session: Session, code: str, field_name: str = "category") -> EventCategory:
    """A leaf category by code, or InvalidInputError naming the field."""
    category = cache.category(session, code)
    if category is None or not category.leaf:
        raise _bad(field_name, f"unknown event category {code!r} (see GET /api/v1/events/"
                               "categories for the leaf codes)")
    return category


def validate(session: Session, report: Report) -> tuple[EventCategory, list[str]]:
    """Check a report; returns its category and the photos' media types."""
    if report.source not in EVENT_SOURCES:
        raise _bad("source", f"unknown source {report.source!r}; one of {', '.join(EVENT_SOURCES)}")
    category = load_category(session, report.category)
    if not (-180 <= report.lon <= 180) or not (-90 <= report.lat <= 90):
        raise _bad("lon/lat", f"coordinates out of range: lon={report.lon}, lat={report.lat}")
    if len(report.description) > MAX_DESCRIPTION:
        raise _bad("description", f"description longer than {MAX_DESCRIPTION} characters")
    if report.priority and report.priority not in ("low", "normal", "high", "urgent"):
        raise _bad("priority", f"unknown priority {report.priority!r}")
    if report.affair_class and report.affair_class not in ("official", "family", "collaborative"):
        raise _bad("affair_class", f"unknown affair class {report.affair_class!r}")
    if report.facility_code is not None and session.scalar(
        select(func.count()).where(Facility.code == report.facility_code)
    ) == 0:
        raise _bad("facility_code", f"unknown facility {report.facility_code!r}")
    return category, _photo_types(report.photos)


def _photo_types(photos: list[bytes]) -> list[str]:
    if len(photos) > MAX_PHOTOS:
        raise _bad("photos", f"at most {MAX_PHOTOS} photos")
    types = []
    for i, data in enumerate(photos):
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad(f"photos[{i}]", f"photo {i} is larger than {MAX_PHOTO_BYTES} bytes")
        media_type = image_type(data)
        if media_type is None:
            raise _bad(f"photos[{i}]", f"photo {i} is not an image (JPEG, PNG, GIF or WebP)")
        types.append(media_type)
    return types


_INSERT = text(resources.files("gridmap.events").joinpath("intake.sql").read_text())
_NONE_AT_INTAKE = ("suspended_from", "satisfaction", "resolved_at", "closed_at")
# Event columns passed to intake.sql (one JSON object per report).
_COLUMNS = (
    "source", "category_code", "affair_class", "priority", "status", "lon", "lat", "address",
    "description", "reporter_name", "reporter_phone", "reporter_email", "facility_code",
    "device_id", "household_id", "grid_code", "generation", "worker_code", "department_code",
    "handler_level", "assignment_reason", "flagged", "queue", "escalation_level", "deadline",
    "rework_count", "duplicate_of", "idempotency_key", "reported_by", "token", "created_at",
    "updated_at", "assigned_at", "accepted_at", "yellow_at", "media_urls",
)
_AUDIT = ("action", "from_status", "to_status", "actor", "role", "note")


@dataclass
class Intake:
    """A stored report as plain rows (attribute access like :class:`Event`, no ORM)."""

    event: Any
    created: bool
    original: Any | None = None


@dataclass
class Staged:
    """A validated, assigned report, not yet written (see :func:`write_staged`)."""

    report: Report
    category: EventCategory
    photo_types: list[str]
    values: dict[str, Any]
    now: datetime
    actor: str


def _check_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= 128:
        raise _bad("Idempotency-Key", "Idempotency-Key must be 1 to 128 characters")


def _existing_row(session: Session, key: str | None, reported_by: str) -> Any | None:
    if key is None:
        return None
    return session.execute(select(Event.__table__).where(
        Event.idempotency_key == key, Event.reported_by == reported_by)).first()


def check_source(principal: Principal | None, source: str) -> None:
    """PermissionDeniedError when the caller's role may not report under ``source``."""
    if principal is None:
        return
    allowed = SOURCES_OF_ROLE.get(principal.role)
    if allowed is not None and source not in allowed:
        raise PermissionDeniedError(
            f"a {principal.role.value} may not report with source {source!r}; "
            f"allowed: {', '.join(allowed)}",
            details=[{"field": "source", "problem": "not allowed for this role"}])


def stage_report(
    session: Session, report: Report, *, now: datetime, idempotency_key: str | None = None,
    lookup: LookupService | None = None, principal: Principal | None = None,
) -> Staged:
    """Validate and assign a report; reads only, writes nothing.

    ``lookup`` (the API's in-memory lookup service) assigns from memory; without it the
    grid and worker come from PostGIS (same rule, same answer). ``principal`` is the
    caller: recorded as reporter and in the audit trail (None for reports made inside the
    system).
    """
    _check_key(idempotency_key)
    check_source(principal, report.source)
    category, photo_types = validate(session, report)
    lon, lat = to_wgs84(report.lon, report.lat, report.crs)
    values = _event_values(session, report, category, lon, lat, now, idempotency_key, lookup)
    values["reported_by"] = principal.identity if principal is not None else ""
    actor = principal.actor if principal is not None else report.source
    return Staged(report, category, photo_types, values, now, actor)


def store_report(
    session: Session, report: Report, *, now: datetime, idempotency_key: str | None = None,
    lookup: LookupService | None = None, principal: Principal | None = None,
) -> Intake:
    """Validate, assign, link, audit and store a report with Core statements, no ORM objects.

    The event row and its audit rows go in one statement; a repeated idempotency key of
    the same caller (also one racing in from another request) returns the stored event,
    ``created=False``. For ``lookup`` and ``principal`` see :func:`stage_report`.
    Nothing is committed here. :mod:`gridmap.events.batch` stores many reports at once.
    """
    _check_key(idempotency_key)
    check_source(principal, report.source)
    reported_by = principal.identity if principal is not None else ""
    existing = _existing_row(session, idempotency_key, reported_by)
    if existing is not None:
        return Intake(existing, created=False)
    staged = stage_report(session, report, now=now, idempotency_key=idempotency_key,
                          lookup=lookup, principal=principal)
    stored = write_staged(session, [staged])[0]
    if stored is None:  # a concurrent report with the same key was stored first
        return Intake(_existing_row(session, idempotency_key, reported_by), created=False)
    return stored


def write_staged(session: Session, staged: Sequence[Staged]) -> list[Intake | None]:
    """Store staged reports in order: duplicates linked, audit rows, photos, webhooks.

    One duplicate query and one INSERT statement (events and their audit rows) per round;
    a report that could be a duplicate of an earlier one in the same call goes into a
    later round, so that it is checked against it in the database like any other.
    ``None`` for a report whose idempotency key is already stored. Nothing is committed.
    """
    out: list[Intake | None] = [None] * len(staged)
    for members in _rounds(staged):
        for i, result in zip(members, _write_round(session, [staged[i] for i in members]),
                             strict=True):
            out[i] = result
    return out


def _rounds(staged: Sequence[Staged]) -> list[list[int]]:
    """Indexes of ``staged`` by round: each report after every earlier one it may duplicate."""
    level: list[int] = []
    earlier: dict[str, list[int]] = {}  # category code → indexes so far
    for i, s in enumerate(staged):
        same = earlier.setdefault(s.category.code, [])
        level.append(max((level[j] + 1 for j in same if _may_duplicate(staged[j], s)),
                         default=0))
        same.append(i)
    rounds: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
    for i, r in enumerate(level):
        rounds[r].append(i)
    return rounds


def _may_duplicate(earlier: Staged, later: Staged) -> bool:
    """Whether ``later`` could be linked to ``earlier`` (a generous superset of the SQL rule)."""
    category = later.category
    if (earlier.category.code != category.code or category.duplicate_radius_m <= 0
            or category.duplicate_window_hours <= 0):
        return False
    a, b = earlier.values, later.values
    return haversine_m(a["lon"], a["lat"], b["lon"], b["lat"]) <= (
        1.5 * category.duplicate_radius_m + 1.0)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (within 0.5% of the geodesic PostGIS measures)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def _write_round(session: Session, staged: list[Staged]) -> list[Intake | None]:
    originals = find_original_rows(
        session, [(s.category, s.values["lon"], s.values["lat"], s.now) for s in staged])
    events: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    for s, original in zip(staged, originals, strict=True):
        s.values["duplicate_of"] = original.id if original is not None else None
        rows = _intake_audit(session, s.values, s.category, original is not None, s.report,
                             s.now, s.actor)
        events.append({name: s.values[name] for name in _COLUMNS} | {"n": len(events)})
        audit.extend({"n": len(audit) + k, "token": s.values["token"], "at": s.now,
                      **dict(zip(_AUDIT, row, strict=True))} for k, row in enumerate(rows))
    params = {"events": orjson.dumps(events).decode(), "audit": orjson.dumps(audit).decode()}
    ids: dict[str, int] = {token: event_id for token, event_id in
                           session.execute(_INSERT, params)}
    out: list[Intake | None] = []
    for s, original in zip(staged, originals, strict=True):
        event_id = ids.get(s.values["token"])
        if event_id is None:  # its idempotency key was stored first
            out.append(None)
            continue
        event = SimpleNamespace(id=event_id, **s.values, **dict.fromkeys(_NONE_AT_INTAKE))
        _store_photos(session, event_id, s)
        notify.publish(session, event, "created", s.now)  # type: ignore[arg-type]
        out.append(Intake(event, created=True, original=original))
    return out


def _store_photos(session: Session, event_id: int, staged: Staged) -> None:
    if staged.report.photos:
        session.execute(insert(EventPhoto), [
            {"event_id": event_id, "stage": "report", "content_type": media_type, "data": data}
            for data, media_type in zip(staged.report.photos, staged.photo_types,
                                        strict=True)])


def create_event(
    session: Session, report: Report, *, now: datetime, idempotency_key: str | None = None,
    lookup: LookupService | None = None, principal: Principal | None = None,
) -> IntakeResult:
    """:func:`store_report`, answered with ORM objects (for callers that go on changing them)."""
    stored = store_report(session, report, now=now, idempotency_key=idempotency_key,
                          lookup=lookup, principal=principal)
    event = session.get(Event, stored.event.id)
    assert event is not None
    original = session.get(Event, stored.original.id) if stored.original is not None else None
    return IntakeResult(event, created=stored.created, original=original)


def _event_values(session: Session, report: Report, category: EventCategory, lon: float,
                  lat: float, now: datetime, key: str | None,
                  lookup: LookupService | None) -> dict[str, Any]:
    affair = report.affair_class or category.affair_class
    generation = 0 if lookup else cache.cached(session, "generation", active_generation_id)
    where = assign(session, lon=lon, lat=lat, generation=generation, category=category,
                   affair_class=affair, facility_code=report.facility_code, lookup=lookup)
    return {
        "source": report.source, "category_code": category.code, "affair_class": affair,
        "priority": report.priority or category.priority, "status": "reported",
        "lon": lon, "lat": lat, "address": report.address,
        "description": report.description, "reporter_name": report.reporter_name,
        "reporter_phone": report.reporter_phone, "reporter_email": report.reporter_email,
        "facility_code": report.facility_code, "device_id": report.device_id,
        "household_id": report.household_id, "media_urls": list(report.media_urls),
        "grid_code": where.grid_code, "generation": where.generation,
        "worker_code": where.worker_code, "department_code": where.department_code,
        "handler_level": where.handler_level, "queue": where.queue, "flagged": where.flagged,
        "assignment_reason": where.reason, "escalation_level": "grid", "deadline": None,
        "rework_count": 0, "idempotency_key": key, "token": secrets.token_hex(8),
        "created_at": now, "updated_at": now, "assigned_at": now, "accepted_at": None,
        "yellow_at": None,
    }


def _intake_audit(session: Session, values: dict[str, Any], category: EventCategory,
                  duplicate: bool, report: Report, now: datetime, actor: str
                  ) -> list[tuple[str, str | None, str | None, str, str, str]]:
    """The audit rows of intake, in order; auto-accept moves ``values`` on."""
    rows: list[tuple[str, str | None, str | None, str, str, str]] = [
        ("report", None, "reported", actor, ROLE_OF_SOURCE[report.source],
         f"reported via {report.source}"),
        ("assign", "reported", "reported", "assignment", "system", values["assignment_reason"]),
    ]
    if duplicate:
        rows.append(("link_duplicate", "reported", "reported", "duplicates", "system",
                     f"duplicate of event {values['duplicate_of']}"))
    elif category.auto_accept and not values["flagged"]:
        accepted = lifecycle.ACTIONS["accept"].target
        dispatched = lifecycle.ACTIONS["dispatch"].target
        rows.append(("accept", "reported", accepted, "auto", "system",
                     f"category {category.code} is accepted automatically"))
        rows.append(("dispatch", accepted, dispatched, "auto", "system",
                     values["assignment_reason"]))
        calendar = cache.cached(session, "calendar", Calendar.load)
        values.update(status=dispatched, **start_clock(calendar, category, now))
    return rows


def decode_photos(encoded: list[str], field_name: str = "photos") -> list[bytes]:
    """Base64 strings (optionally ``data:image/...;base64,`` URLs) as bytes, or a clear error."""
    import base64
    import binascii

    out = []
    for i, text_ in enumerate(encoded):
        payload = text_.split(",", 1)[1] if text_.startswith("data:") else text_
        try:
            out.append(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise _bad(f"{field_name}[{i}]", f"photo {i} is not valid base64") from None
    return out


def attach_photos(session: Session, event: Event, photos: list[bytes], stage: str) -> int:
    """Validate and store photos for an existing event (e.g. the handler's feedback)."""
    types = _photo_types(photos)
    for data, media_type in zip(photos, types, strict=True):
        session.add(EventPhoto(event_id=event.id, stage=stage, content_type=media_type,
                               data=data))
    return len(photos)
