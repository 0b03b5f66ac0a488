"""Login sessions for people (the web page); API keys need no login."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.dependencies import SessionDep
from api.schemas import ErrorOut, LoginIn, LoginOut, PrincipalOut
from api.security import SESSION_COOKIE, PrincipalDep
from gridmap.auth import store
from gridmap.auth.principal import Principal, Role
from gridmap.config import get_settings

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 422: {"model": ErrorOut}}


def _out(principal: Principal) -> PrincipalOut:
    return PrincipalOut(kind=principal.kind, name=principal.name, role=principal.role.value,
                        area_code=principal.area_code)  # fmt: skip


@router.post("/login", operation_id="login", response_model=LoginOut, responses=ERRORS)
def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> Any:
    """Check a username and password; returns a token and sets an HttpOnly session cookie."""
    user = store.check_password(session, body.username, body.password)
    ttl = get_settings().session_ttl_s
    token = store.issue_session(user.id, request.app.state.session_secret, ttl)
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl, httponly=True, samesite="strict")
    request.app.state.principals.invalidate()
    principal = Principal("user", user.id, user.username, Role(user.role), user.area_code)
    return LoginOut(token=token, expires_in=ttl, principal=_out(principal))


@router.post("/logout", operation_id="logout", status_code=204, response_class=Response)
def logout() -> Response:
    """Forget the session cookie in this browser."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me", operation_id="whoami", response_model=PrincipalOut, responses=ERRORS)
def whoami(principal: PrincipalDep) -> Any:
    """The authenticated caller: kind, name, role and area."""
    return _out(principal)
