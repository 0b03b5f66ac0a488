"""Credentials from requests → principals; role checks as one-line dependencies.

Protect a router with ``app.include_router(router, dependencies=[Allow(Role.admin, …)])``
and take the caller in a handler with ``principal: PrincipalDep`` (FastAPI resolves it
once per request). Credentials: ``Authorization: Bearer <key or session token>``,
``X-API-Key: <key>``, or the ``gridmap_session`` cookie set by the login.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from api.limits import check_principal_rate
from gridmap.auth.cache import PrincipalCache
from gridmap.auth.principal import Principal, Role
from gridmap.auth.store import KEY_PREFIX, SESSION_PREFIX, verify_session
from gridmap.config import Settings
from gridmap.errors import AuthenticationError, PermissionDeniedError

SESSION_COOKIE = "gridmap_session"
ALL_ROLES = tuple(Role)
LOOKUP_ROLES = (Role.admin, Role.system, Role.gis_editor)


def session_secret(settings: Settings) -> bytes:
    """The key signing session tokens; in development a random one kept under data_dir."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "session-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def _credential(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key") or request.cookies.get(SESSION_COOKIE)


def authenticate(conn: HTTPConnection) -> Principal:
    """The caller of a request (or raw ASGI scope); AuthenticationError if none is valid.

    Keys and users come from the in-memory cache: no database query per request.
    """
    token = _credential(conn)
    if not token:
        raise AuthenticationError("credentials required: an API key or a login session")
    cache: PrincipalCache = conn.app.state.principals
    principal: Principal | None
    if token.startswith(SESSION_PREFIX):
        principal = cache.by_user(verify_session(token, conn.app.state.session_secret))
    elif token.startswith(KEY_PREFIX):
        principal = cache.by_key(token)
    else:
        principal = None
    if principal is None:
        raise AuthenticationError("invalid, revoked or expired credentials")
    check_principal_rate(principal)
    return principal


def get_principal(request: Request) -> Principal:
    """The authenticated caller; AuthenticationError (401) without valid credentials."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = authenticate(request)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def Allow(*roles: Role) -> Any:  # noqa: N802 - reads as a declaration at include_router
    """A dependency admitting only ``roles`` (403 for other authenticated callers)."""
    allowed = frozenset(roles)

    def check(principal: PrincipalDep) -> None:
        if principal.role not in allowed:
            raise PermissionDeniedError(f"role {principal.role.value} may not use this endpoint")

    return Depends(check)
