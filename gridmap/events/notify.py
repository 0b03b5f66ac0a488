"""Notifications: live updates (the audit trail as a change feed) and webhooks.

Intake never calls anyone. Live updates read ``event_transitions`` — every change is
audited there anyway — by id, so nothing extra is written. (PostgreSQL NOTIFY was tried
first: a notifying transaction holds a database-wide lock through its commit, which
serialised all intake to one commit at a time.) Webhooks get one outbox row per active
webhook in the intake's own transaction; a separate deliverer posts the outbox with
retries and exponential back-off, so a failing or hanging webhook cannot block intake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql as psycopg_sql
from sqlalchemy import func, insert, literal, select, true
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal
from gridmap.auth.scope import event_filter
from gridmap.models import Event, EventTransition, Webhook, WebhookDelivery

log = logging.getLogger("gridmap.events.notify")
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 300.0
DELIVERY_TIMEOUT_S = 5.0


SUMMARY_FIELDS: dict[str, str] = {
    "id": "id",
    "status": "status",
    "category": "category_code",
    "priority": "priority",
    "grid_code": "grid_code",
    "worker_code": "worker_code",
    "department_code": "department_code",
    "queue": "queue",
    "flagged": "flagged",
    "escalation_level": "escalation_level",
    "duplicate_of": "duplicate_of",
    "lon": "lon",
    "lat": "lat",
}
"""The change message's fields (after ``kind``): message key → events column."""


def summary(event: Event, kind: str) -> dict[str, Any]:
    """A small, masked message about an event change (fits NOTIFY's 8 kB limit)."""
    return {"kind": kind, **{key: getattr(event, column)
                             for key, column in SUMMARY_FIELDS.items()}}


def summary_sql(alias: str, kind: str) -> psycopg_sql.Composed:
    """:func:`summary` as a SQL ``jsonb_build_object`` of the events row ``alias``, for
    set-based changes (many events in one statement)."""
    pairs = [psycopg_sql.SQL("{}, {}").format(psycopg_sql.Literal(key),
                                               psycopg_sql.Identifier(alias, column))
             for key, column in SUMMARY_FIELDS.items()]
    return psycopg_sql.SQL("jsonb_build_object('kind', {}, {})").format(
        psycopg_sql.Literal(kind), psycopg_sql.SQL(", ").join(pairs))


def publish_sql(rows: str, kind: str) -> psycopg_sql.Composed:
    """An INSERT of :func:`publish`'s webhook deliveries for every events row of the
    relation ``rows`` (e.g. a CTE's RETURNING), to put in the statement that changed them."""
    return psycopg_sql.SQL(
        "INSERT INTO webhook_deliveries (webhook_id, payload, attempts, status, next_attempt_at)"
        " SELECT w.id, {payload}, 0, 'pending', now()"
        " FROM {rows} r CROSS JOIN webhooks w WHERE w.active"
    ).format(payload=summary_sql("r", kind), rows=psycopg_sql.Identifier(rows))


def publish(session: Session, event: Event, kind: str, now: datetime) -> None:
    """Queue a live update and webhook deliveries for ``event`` (sent when the tx commits)."""
    from gridmap.events import cache

    message = summary(event, kind)

    if not cache.has_webhooks(session):
        return
    session.execute(
        insert(WebhookDelivery).from_select(
            ["webhook_id", "payload", "next_attempt_at"],
            select(Webhook.id, literal(message, WebhookDelivery.payload.type), literal(now))
            .where(Webhook.active),
        )
    )


def latest_change_id(session: Session) -> int:
    """The id of the newest audit row (a live feed starts after it)."""
    return int(session.scalar(select(func.coalesce(func.max(EventTransition.id), 0))) or 0)


def changes_since(session: Session, after_id: int, limit: int = 200,
                  principal: Principal | None = None) -> list[dict[str, Any]]:
    """Changes after audit row ``after_id``, oldest first: the action and the event's summary.

    With ``principal``, only the events the caller may see (filtered in the query).
    """
    scope = (event_filter(principal, Event.grid_code, Event.reported_by)
             if principal is not None else true())
    rows = session.execute(
        select(EventTransition, Event)
        .join(Event, Event.id == EventTransition.event_id)
        .where(EventTransition.id > after_id, scope)
        .order_by(EventTransition.id)
        .limit(limit)
    ).all()
    return [
        {**summary(event, t.action), "change_id": t.id, "from_status": t.from_status,
         "to_status": t.to_status, "role": t.role, "at": t.at.isoformat()}
        for t, event in rows
    ]


def register_webhook(session: Session, url: str) -> Webhook:
    """Register an external system's URL to receive event changes."""
    from gridmap.errors import InvalidInputError

    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"webhook url must be http(s): {url!r}",
                                details=[{"field": "url", "problem": "not http(s)"}])
    from gridmap.events import cache

    hook = Webhook(url=url, active=True)
    session.add(hook)
    session.flush()
    cache.clear()
    return hook


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures: 1, 2, 4 … 300 s."""
    return timedelta(seconds=min(2.0 ** (attempts - 1), MAX_BACKOFF_S))


Poster = Callable[[str, dict[str, Any]], None]


def deliver_due(session: Session, now: datetime, post: Poster, limit: int = 50) -> int:
    """Try every due delivery once with ``post(url, payload)``; returns how many succeeded.

    ``post`` raises on failure (HTTP error, timeout). Failures are retried after
    :func:`backoff`; after ``MAX_ATTEMPTS`` the delivery is marked ``failed``.
    """
    rows = session.execute(
        select(WebhookDelivery, Webhook.url)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    ).all()
    ok = 0
    for delivery, url in rows:
        delivery.attempts += 1
        try:
            post(url, delivery.payload)
        except Exception as exc:  # noqa: BLE001 - any failure of a remote system is retried
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
            log.info("webhook %s failed (attempt %d): %s", url, delivery.attempts, exc)
        else:
            delivery.status = "delivered"
            ok += 1
    return ok


def httpx_poster(timeout: float = DELIVERY_TIMEOUT_S) -> Poster:
    """A poster that POSTs JSON with httpx and raises on non-2xx or timeout."""
    import httpx

    client = httpx.Client(timeout=timeout)

    def post(url: str, payload: dict[str, Any]) -> None:
        client.post(url, json=payload).raise_for_status()

    return post
