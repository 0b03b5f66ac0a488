"""Webhooks: external systems that receive every event change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.dependencies import SessionDep
from api.event_schemas import WebhookIn, WebhookOut
from api.schemas import ErrorOut
from gridmap.events import notify

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.post("/webhooks", operation_id="register_webhook", response_model=WebhookOut,
             status_code=201, responses={422: {"model": ErrorOut}})
def register_webhook(body: WebhookIn, session: SessionDep) -> Any:
    """Register a URL; every event change is POSTed to it as JSON, retried with back-off."""
    hook = notify.register_webhook(session, body.url)
    return {"id": hook.id, "url": hook.url, "active": hook.active}
