"""The audit log: every read of a person's record and every write (who, when, what)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal
from gridmap.errors import InvalidInputError
from gridmap.models import AuditEntry

MAX_AUDIT_PAGE = 1000


def record(
    session: Session, principal: Principal, action: str, resource: str, record_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry in the caller's transaction (so it is stored with the write)."""
    session.add(AuditEntry(actor=principal.actor, role=principal.role.value, action=action,
                           resource=resource, record_id=str(record_id), detail=detail or {}))


def query(
    session: Session, *, actor: str | None = None, resource: str | None = None,
    record_id: str | None = None, since: datetime | None = None, limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, filtered by the given fields (values bound, never formatted)."""
    if not 1 <= limit <= MAX_AUDIT_PAGE:
        raise InvalidInputError(f"limit must be 1..{MAX_AUDIT_PAGE}",
                                details=[{"field": "limit", "value": limit}])  # fmt: skip
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if resource is not None:
        stmt = stmt.where(AuditEntry.resource == resource)
    if record_id is not None:
        stmt = stmt.where(AuditEntry.record_id == record_id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return list(session.scalars(stmt))
