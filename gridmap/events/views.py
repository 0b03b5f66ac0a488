"""Public views of events: personal data masked, traffic light computed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gridmap.models import Event


def mask_phone(phone: str | None) -> str | None:
    """138****5678 style: keep the first 3 and last 4 digits."""
    if not phone:
        return phone
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "****"


def mask_name(name: str | None) -> str | None:
    """张** style: the family name and stars."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


def mask_email(email: str | None) -> str | None:
    """a***@example.org style."""
    if not email or "@" not in email:
        return email and "***"
    user, domain = email.split("@", 1)
    return f"{user[:1]}***@{domain}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_dict(event: Event, light: str | None = None) -> dict[str, Any]:
    """The event as JSON-ready data, reporter contact masked."""
    return {
        "id": event.id,
        "source": event.source,
        "category": event.category_code,
        "affair_class": event.affair_class,
        "priority": event.priority,
        "status": event.status,
        "lon": event.lon,
        "lat": event.lat,
        "address": event.address,
        "description": event.description,
        "reporter": {
            "name": mask_name(event.reporter_name),
            "phone": mask_phone(event.reporter_phone),
            "email": mask_email(event.reporter_email),
        },
        "facility_code": event.facility_code,
        "device_id": event.device_id,
        "media_urls": list(event.media_urls or []),
        "grid_code": event.grid_code,
        "generation": event.generation,
        "worker_code": event.worker_code,
        "department_code": event.department_code,
        "handler_level": event.handler_level,
        "queue": event.queue,
        "flagged": event.flagged,
        "assignment_reason": event.assignment_reason,
        "escalation_level": event.escalation_level,
        "deadline": _iso(event.deadline),
        "traffic_light": light,
        "rework_count": event.rework_count,
        "duplicate_of": event.duplicate_of,
        "satisfaction": event.satisfaction,
        "created_at": _iso(event.created_at),
        "updated_at": _iso(event.updated_at),
        "accepted_at": _iso(event.accepted_at),
        "resolved_at": _iso(event.resolved_at),
        "closed_at": _iso(event.closed_at),
    }
