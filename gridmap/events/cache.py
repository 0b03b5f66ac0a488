"""Short-lived per-process caches of the small tables read by every report.

Categories, the working calendar, the active generation and whether any webhook is
active change rarely; reading them once per report costs more than the report's own SQL.
Entries live ``TTL_S`` seconds, so an edit is seen by every process within that time (and
at once by the process that made it, which calls :func:`clear`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gridmap.models import EventCategory, Webhook

TTL_S = 5.0
T = TypeVar("T")
_lock = threading.Lock()
_entries: dict[tuple[object, str], tuple[float, object]] = {}


def _bind_key(session: Session) -> object:
    # The engine itself (hashed by identity): its URL hashes by rendering itself as text,
    # which cost more than the lookup (~50 us, four times per report).
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def cached(session: Session, name: str, load: Callable[[Session], T]) -> T:
    """``load(session)``, remembered for ``TTL_S`` seconds per engine (database)."""
    key = (_bind_key(session), name)
    now = time.monotonic()
    with _lock:
        hit = _entries.get(key)
    if hit is not None and now - hit[0] < TTL_S:
        return hit[1]  # type: ignore[return-value]
    value = load(session)
    with _lock:
        _entries[key] = (now, value)
    return value


def clear() -> None:
    """Forget everything (after editing categories, calendar, generations or webhooks)."""
    with _lock:
        _entries.clear()


def _load_categories(session: Session) -> dict[str, EventCategory]:
    rows = list(session.scalars(select(EventCategory)))
    for row in rows:
        session.expunge(row)
    return {row.code: row for row in rows}


def categories(session: Session) -> dict[str, EventCategory]:
    """Every category by code (detached rows: read, don't modify)."""
    return cached(session, "categories", _load_categories)


def category(session: Session, code: str) -> EventCategory | None:
    """One category by code, or None."""
    return categories(session).get(code)


def has_webhooks(session: Session) -> bool:
    """Whether any webhook is active."""
    return cached(session, "webhooks", lambda s: s.scalar(
        select(Webhook.id).where(Webhook.active).limit(1)) is not None)
