"""Users, API keys and login sessions in the database.

API keys are 32 random bytes: a SHA-256 of them is enough to store (unlike passwords,
they cannot be guessed from a dictionary), and it lets a key be found by its hash in
memory without a slow hash per request. Passwords use argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gridmap.areas import validate_code
from gridmap.auth.passwords import hash_password, verify_password
from gridmap.auth.principal import Role
from gridmap.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from gridmap.models import ApiKey, User, Worker

KEY_PREFIX = "gmk_"
SESSION_PREFIX = "gms_"
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# A dummy hash verified when the user does not exist, so timing does not reveal it.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


def hash_key(key: str) -> str:
    """The stored form of an API key (hex SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInputError(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
            details=[{"field": "role", "value": role}],
        ) from None


def _scope(role: Role, area_code: str | None) -> str | None:
    if area_code is not None:
        validate_code(area_code)
    if role is Role.operator and area_code is None:
        raise InvalidInputError("an operator needs an area (--area CODE)",
                                details=[{"field": "area_code"}])  # fmt: skip
    return area_code


@dataclass(frozen=True)
class NewKey:
    """A created key: ``secret`` is shown once and never stored."""

    id: int
    name: str
    role: str
    secret: str


def create_key(
    session: Session, name: str, role: str, area_code: str | None = None,
    user_id: int | None = None,
) -> NewKey:
    """Create an API key; the returned secret is the only copy."""
    checked = _role(role)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(secret), prefix=secret[:10], role=checked.value,
                 area_code=_scope(checked, area_code), user_id=user_id)  # fmt: skip
    session.add(row)
    session.flush()
    return NewKey(row.id, name, checked.value, secret)


def revoke_key(session: Session, key_id: int) -> None:
    """Revoke a key (effective in every process within ``auth_cache_ttl_s``)."""
    done = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )  # fmt: skip
    if done.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(f"no active API key with id {key_id}")


def list_keys(session: Session) -> list[ApiKey]:
    """Every key (secrets are not stored; the prefix identifies them)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def add_user(
    session: Session, username: str, password: str, role: str,
    area_code: str | None = None, worker_code: str | None = None,
) -> User:
    """Create a user with an argon2-hashed password."""
    if not USERNAME_RE.match(username):
        raise InvalidInputError(f"username {username!r}: use 1-64 letters, digits, _ . @ -",
                                details=[{"field": "username"}])  # fmt: skip
    if len(password) < 10:
        raise InvalidInputError("password: at least 10 characters", details=[{"field": "password"}])
    checked = _role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists")
    worker_id = None
    if worker_code is not None:
        worker_id = session.scalar(select(Worker.id).where(Worker.code == worker_code))
        if worker_id is None:
            raise NotFoundError(f"worker {worker_code!r} not found")
    if checked is Role.grid_worker and worker_id is None:
        raise InvalidInputError("a grid worker account needs --worker CODE (their grids)",
                                details=[{"field": "worker_code"}])  # fmt: skip
    user = User(username=username, password_hash=hash_password(password), role=checked.value,
                area_code=_scope(checked, area_code), worker_id=worker_id, disabled=False)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def disable_user(session: Session, username: str) -> None:
    """Disable a user: their sessions and keys stop working within the cache TTL."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"user {username!r} not found")
    user.disabled = True
    session.execute(update(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=func.now()))  # fmt: skip


def check_password(session: Session, username: str, password: str) -> User:
    """The enabled user with this password; AuthenticationError otherwise (same message)."""
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or user.disabled:
        raise AuthenticationError("wrong username or password")
    return user


def issue_session(user_id: int, secret: bytes, ttl_s: int, now: float | None = None) -> str:
    """A signed session token ``gms_<user>_<expiry>_<hmac>`` (stateless; see verify)."""
    expires = int((now or time.time()) + ttl_s)
    payload = f"{user_id}_{expires}"
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{SESSION_PREFIX}{payload}_{sig}"


def verify_session(token: str, secret: bytes, now: float | None = None) -> int:
    """The user id of a valid, unexpired session token; AuthenticationError otherwise."""
    try:
        user_id, expires, sig = token.removeprefix(SESSION_PREFIX).split("_")
        payload = f"{int(user_id)}_{int(expires)}"
    except ValueError:
        raise AuthenticationError("malformed session token") from None
    good = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, sig):
        raise AuthenticationError("invalid session token")
    if int(expires) < (now or time.time()):
        raise AuthenticationError("session expired; log in again")
    return int(user_id)


def bootstrap_admin(session: Session) -> str | None:
    """With no user and no key, create ``admin`` with a random one-time password.

    Returns the password (to print once) or None when credentials already exist. There
    is never a built-in default password.
    """
    if session.scalar(select(func.count()).select_from(User)) or session.scalar(
        select(func.count()).select_from(ApiKey)
    ):
        return None
    password = secrets.token_urlsafe(12)
    add_user(session, "admin", password, Role.admin.value)
    return password


def touch_keys(session: Session, used: dict[int, datetime]) -> None:
    """Record last-use times (batched by the cache, not one write per request)."""
    for key_id, at in used.items():
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


def utcnow() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)
