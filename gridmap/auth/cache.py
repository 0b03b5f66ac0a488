"""An in-memory map of credentials to principals, so a request costs no database query.

Every ``ttl_s`` a background thread checks ``auth_version`` (bumped by triggers on users,
keys and worker assignments) and re-reads keys and users only when it moved: a revoked
key or a disabled user stops working within that time in every process. Last-use times
of keys are collected here and written on the next check.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal, Role
from gridmap.auth.store import hash_key, touch_keys, utcnow
from gridmap.models import ApiKey, User, WorkerAssignment

log = logging.getLogger("gridmap.auth")


class PrincipalCache:
    """Key hash → principal and user id → principal, refreshed every ``ttl_s`` seconds."""

    def __init__(self, engine: Engine, ttl_s: float = 2.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._keys: dict[str, Principal] = {}
        self._users: dict[int, Principal] = {}
        self._loaded_at = float("-inf")
        self._used: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._invalidated = True  # load synchronously before the first answer
        self._version: int | None = None  # auth_version of what is loaded

    def by_key(self, secret: str) -> Principal | None:
        """The principal of an API key, or None if unknown or revoked."""
        self._refresh_if_stale()
        principal = self._keys.get(hash_key(secret))
        if principal is not None:
            self._used[principal.id] = utcnow()
        return principal

    def by_user(self, user_id: int) -> Principal | None:
        """The principal of an enabled user, or None."""
        self._refresh_if_stale()
        return self._users.get(user_id)

    def invalidate(self) -> None:
        """Reload on the next lookup (after a change made by this process)."""
        self._invalidated = True

    def _refresh_if_stale(self) -> None:
        """Reload synchronously when empty or invalidated; else in the background.

        A reload reads every key, user and worker assignment (65k rows at city scale);
        done inline it stalled every request behind it every ``ttl_s`` seconds (p99 of
        lookups ~350 ms), so a stale cache keeps answering while a thread reloads it.
        """
        if self._invalidated:
            # Under the lock, so a background reload that started before the change
            # finishes first and this one reads the change.
            with self._lock:
                if self._invalidated:
                    self._reload()
                    self._invalidated = False
            return
        if time.monotonic() - self._loaded_at <= self.ttl_s:
            return
        if self._lock.acquire(blocking=False):
            threading.Thread(target=self._reload_and_release, daemon=True).start()

    def _reload_and_release(self) -> None:
        try:
            self._reload()
        except Exception:  # the next request retries; the old cache stays in use
            log.exception("reloading keys and users failed")
        finally:
            self._lock.release()

    def _reload(self) -> None:
        """Record key use; re-read keys and users only if ``auth_version`` moved.

        The version is read before the rows: a change committed in between is loaded
        now and seen again (harmlessly) by the next check, never lost.
        """
        used, self._used = self._used, {}
        with Session(self.engine) as session, session.begin():
            if used:
                touch_keys(session, used)
            version = _auth_version(session)
            if version is not None and version == self._version and not self._invalidated:
                self._loaded_at = time.monotonic()
                return
            grids = _grids_by_worker(session)
            users = {
                u.id: _user_principal(u, grids) for u in session.scalars(
                    select(User).where(User.disabled.is_(False)))
            }  # fmt: skip
            keys = {
                k.key_hash: _key_principal(k, grids, users)
                for k in session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
                if k.user_id is None or k.user_id in users
            }
        self._users, self._keys = users, keys
        self._version = version
        self._loaded_at = time.monotonic()


def _auth_version(session: Session) -> int | None:
    """The counter bumped by every change to users, keys or worker assignments."""
    return session.scalar(text("SELECT version FROM auth_version WHERE id = 1"))


def _grids_by_worker(session: Session) -> dict[int, tuple[str, ...]]:
    """The grids of every worker who has a user account (only they can log in)."""
    out: dict[int, list[str]] = {}
    for worker_id, code in session.execute(
        select(WorkerAssignment.worker_id, WorkerAssignment.grid_code)
        .where(WorkerAssignment.worker_id.in_(
            select(User.worker_id).where(User.worker_id.is_not(None))))
        .order_by(WorkerAssignment.grid_code)
    ):
        out.setdefault(worker_id, []).append(code)
    return {k: tuple(v) for k, v in out.items()}


def _user_principal(user: User, grids: dict[int, tuple[str, ...]]) -> Principal:
    own = grids.get(user.worker_id, ()) if user.worker_id is not None else ()
    return Principal("user", user.id, user.username, Role(user.role), user.area_code, own,
                     user_id=user.id)  # fmt: skip


def _key_principal(
    key: ApiKey, grids: dict[int, tuple[str, ...]], users: dict[int, Principal]
) -> Principal:
    owner = users.get(key.user_id) if key.user_id is not None else None
    own = owner.grid_codes if owner is not None else ()
    return Principal("key", key.id, key.name, Role(key.role), key.area_code, own,
                     user_id=key.user_id)  # fmt: skip
