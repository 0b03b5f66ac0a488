"""The audit log (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.dependencies import SessionDep
from api.schemas import AuditEntryOut, ErrorOut
from gridmap.auth import audit

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get(
    "/audit", operation_id="list_audit", response_model=list[AuditEntryOut],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def list_audit(
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    resource: Annotated[str | None, Query(max_length=32)] = None,
    record_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_AUDIT_PAGE)] = 100,
) -> Any:
    """Audit entries, newest first: who read or wrote what, and when."""
    rows = audit.query(session, actor=actor, resource=resource, record_id=record_id,
                       since=since, limit=limit)  # fmt: skip
    return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "role": r.role,
             "action": r.action, "resource": r.resource, "record_id": r.record_id,
             "detail": r.detail} for r in rows]  # fmt: skip
