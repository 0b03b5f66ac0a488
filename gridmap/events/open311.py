"""Open311 GeoReport v2 over the events core: services, requests, tokens (JSON and XML).

Service codes are the leaf category codes. Statuses map to GeoReport's two: ``closed``
(closed or rejected) and ``open`` (everything else). Reporter contact is never output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal
from gridmap.auth.scope import event_filter
from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.events import intake
from gridmap.events.queries import categories
from gridmap.lookup.service import LookupService
from gridmap.models import Department, Event, EventCategory

CLOSED = ("closed", "rejected")
DEFAULT_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000


def _service(cat: EventCategory, groups: dict[str, str]) -> dict[str, Any]:
    return {
        "service_code": cat.code,
        "service_name": cat.name,
        "description": cat.name_en,
        "metadata": cat.kind == "component",
        "type": "realtime",
        "keywords": ", ".join(filter(None, [cat.kind, cat.affair_class, cat.priority])),
        "group": groups.get(cat.parent_code or "", cat.kind),
    }


def services(session: Session) -> list[dict[str, Any]]:
    """GET services: every leaf category as a service."""
    tree = categories(session)
    groups = {c.code: c.name for c in tree if not c.leaf}
    return [_service(c, groups) for c in tree if c.leaf]


def service_definition(session: Session, code: str) -> dict[str, Any]:
    """GET services/{code}: attributes (component services take a facility code)."""
    cat = session.get(EventCategory, code)
    if cat is None or not cat.leaf:
        raise NotFoundError(f"service_code {code!r} does not exist")
    attributes = []
    if cat.kind == "component":
        attributes.append({
            "variable": True, "code": "facility_code", "datatype": "string",
            "required": False, "datatype_description": "16-digit facility code",
            "order": 1, "description": "the code painted on the component, if visible",
        })
    return {"service_code": cat.code, "attributes": attributes}


def _w3(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def request_dict(event: Event, service_name: str, agency: str | None) -> dict[str, Any]:
    """One service request as GeoReport shows it (no personal data)."""
    return {
        "service_request_id": str(event.id),
        "status": "closed" if event.status in CLOSED else "open",
        "status_notes": event.status,
        "service_name": service_name,
        "service_code": event.category_code,
        "description": event.description,
        "agency_responsible": agency,
        "service_notice": event.assignment_reason,
        "requested_datetime": _w3(event.created_at),
        "updated_datetime": _w3(event.updated_at),
        "expected_datetime": _w3(event.deadline),
        "address": event.address or "",
        "address_id": event.grid_code or "",
        "zipcode": "",
        "lat": event.lat,
        "long": event.lon,
        "media_url": (event.media_urls or [""])[0],
    }


def _requests(session: Session, stmt: Any) -> list[dict[str, Any]]:
    names = {c.code: c.name for c in categories(session)}
    rows = session.execute(select(Department.code, Department.name))
    departments = {code: name for code, name in rows}
    out = []
    for event in session.scalars(stmt):
        agency = departments.get(event.department_code or "") or (
            f"grid {event.grid_code}" if event.grid_code else "command center")
        out.append(request_dict(event, names.get(event.category_code, ""), agency))
    return out


def _visible(principal: Principal | None) -> Any:
    """The caller's events (all of them without a principal: the CLI, tests of the core)."""
    if principal is None:
        return true()
    return event_filter(principal, Event.grid_code, Event.reported_by)


def get_request(session: Session, request_id: str,
                principal: Principal | None = None) -> list[dict[str, Any]]:
    """GET requests/{id}: a list of one (not found outside the caller's area)."""
    if not request_id.isdigit():
        raise NotFoundError(f"service_request_id {request_id!r} does not exist")
    found = _requests(session, select(Event).where(Event.id == int(request_id),
                                                   _visible(principal)))
    if not found:
        raise NotFoundError(f"service_request_id {request_id!r} does not exist")
    return found


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{name} is not a W3C datetime: {value!r}",
                                details=[{"field": name, "problem": "bad datetime"}]) from None


def find_requests(session: Session, now: datetime, *, service_request_id: str | None = None,
                  service_code: str | None = None, start_date: str | None = None,
                  end_date: str | None = None, status: str | None = None,
                  principal: Principal | None = None) -> list[dict[str, Any]]:
    """GET requests with the spec's filters (default: the last 90 days, at most 1000),
    only those the caller may see."""
    stmt = select(Event).where(_visible(principal)).order_by(Event.id.desc()).limit(MAX_REQUESTS)
    if service_request_id:
        ids = [p.strip() for p in service_request_id.split(",") if p.strip()]
        if not all(i.isdigit() for i in ids):
            raise InvalidInputError("service_request_id must be comma-separated numbers",
                                    details=[{"field": "service_request_id", "problem": "bad"}])
        return _requests(session, stmt.where(Event.id.in_([int(i) for i in ids])))
    start, end = _date(start_date, "start_date"), _date(end_date, "end_date")
    stmt = stmt.where(Event.created_at >= (start or (end or now) - DEFAULT_WINDOW))
    if end:
        stmt = stmt.where(Event.created_at <= end)
    if service_code:
        stmt = stmt.where(Event.category_code.in_(service_code.split(",")))
    if status:
        wanted = set(status.split(","))
        if not wanted <= {"open", "closed"}:
            raise InvalidInputError("status must be open, closed or both",
                                    details=[{"field": "status", "problem": "unknown"}])
        if wanted == {"open"}:
            stmt = stmt.where(Event.status.not_in(CLOSED))
        elif wanted == {"closed"}:
            stmt = stmt.where(Event.status.in_(CLOSED))
    return _requests(session, stmt)


def _float(form: dict[str, str], name: str) -> float:
    try:
        return float(form[name])
    except (KeyError, ValueError):
        raise InvalidInputError(f"{name} is required as a number",
                                details=[{"field": name, "problem": "required number"}]) from None


def _source(form: dict[str, str], principal: Principal | None) -> str:
    """``external`` for a system posting with an ``api_key`` field, else ``resident``."""
    if not form.get("api_key"):
        return "resident"
    if principal is not None and "external" not in intake.SOURCES_OF_ROLE.get(
            principal.role, ("external",)):
        return "resident"
    return "external"


def post_request(session: Session, form: dict[str, str], now: datetime,
                 lookup: LookupService | None = None,
                 principal: Principal | None = None) -> list[dict[str, Any]]:
    """POST requests: create an event from GeoReport form fields (assigned via ``lookup``)."""
    code = form.get("service_code") or ""
    cat = session.get(EventCategory, code)
    if cat is None or not cat.leaf:
        raise InvalidInputError(f"service_code {code!r} does not exist",
                                details=[{"field": "service_code", "problem": "unknown"}])
    name = " ".join(filter(None, [form.get("last_name"), form.get("first_name")])) or None
    report = intake.Report(
        source=_source(form, principal), category=code,
        lon=_float(form, "long"), lat=_float(form, "lat"),
        description=form.get("description", ""), address=form.get("address_string"),
        reporter_name=name, reporter_phone=form.get("phone"), reporter_email=form.get("email"),
        facility_code=form.get("attribute[facility_code]") or None,
        media_urls=[form["media_url"]] if form.get("media_url") else [],
    )
    result = intake.create_event(session, report, now=now, lookup=lookup, principal=principal)
    event = result.event
    notice = event.assignment_reason
    if result.original is not None:
        notice += f"; duplicate of request {result.original.id}"
    return [{"service_request_id": str(event.id), "service_notice": notice,
             "account_id": form.get("account_id")}]


def token(session: Session, token_id: str,
          principal: Principal | None = None) -> list[dict[str, Any]]:
    """GET tokens/{id}: the request created under a token (if the caller may see it)."""
    event_id = session.scalar(select(Event.id).where(Event.token == token_id,
                                                     _visible(principal)))
    if event_id is None:
        raise NotFoundError(f"token {token_id!r} does not exist")
    return [{"service_request_id": str(event_id), "token": token_id}]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(parent: ET.Element, data: dict[str, Any]) -> None:
    for key, value in data.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, list):
            item_tag = key[:-1] if key.endswith("s") else "item"
            for item in value:
                _fill(ET.SubElement(child, item_tag), item)
        else:
            child.text = _text(value)


def to_xml(root: str, items: list[dict[str, Any]] | dict[str, Any], item: str = "") -> bytes:
    """GeoReport XML: ``<root><item>…</item></root>`` for lists, ``<root>…</root>`` for one."""
    top = ET.Element(root)
    if isinstance(items, dict):
        _fill(top, items)
    else:
        for data in items:
            _fill(ET.SubElement(top, item), data)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8")
