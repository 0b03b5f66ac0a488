"""Area scope as SQL conditions, so that every query filters by the caller's area itself.

A scope is a set of code prefixes: an operator of street 500103001 sees rows whose code
column starts with ``500103001``; a grid worker sees their own grid codes. City-wide
roles get no condition. Codes are digits only (validated), so a prefix is a safe
``LIKE`` pattern; it is still bound, never formatted into SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.orm import QueryableAttribute

from gridmap.auth.principal import Principal, Role
from gridmap.errors import NotFoundError, PermissionDeniedError


def code_prefix(area_code: str) -> str:
    """The prefix shared by every code inside ``area_code``.

    Six-digit city/province codes end in zero pairs (500000 → 50, 510100 → 5101);
    longer codes are their own prefix.
    """
    if len(area_code) == 6:
        trimmed = area_code
        while trimmed.endswith("00") and len(trimmed) > 2:
            trimmed = trimmed[:-2]
        return trimmed
    return area_code


def scope_prefixes(principal: Principal) -> list[str] | None:
    """The code prefixes the caller may see; ``None`` means everything."""
    if principal.role is Role.grid_worker:
        return list(principal.grid_codes)
    if principal.role is Role.operator and principal.area_code:
        return [code_prefix(principal.area_code)]
    return None


def scope_patterns(principal: Principal) -> list[str] | None:
    """``LIKE`` patterns for bound-array SQL (``code LIKE ANY(:patterns)``); None: all."""
    prefixes = scope_prefixes(principal)
    return None if prefixes is None else [f"{p}%" for p in prefixes]


# Map layers and OGC collections that show events.
EVENT_LAYERS = frozenset({"events"})


def layer_patterns(principal: Principal, layer: str) -> list[str] | None:
    """:func:`scope_patterns` for one map layer or OGC collection.

    Reporters see their own events through the events API; shared map layers of
    events show them none (grids, buildings and facilities stay visible).
    """
    if layer in EVENT_LAYERS and principal.role is Role.reporter:
        return []
    return scope_patterns(principal)


def area_filter(
    principal: Principal, code_column: ColumnElement[Any] | QueryableAttribute[Any]
) -> ColumnElement[bool]:
    """A SQL condition true for the rows of ``code_column`` inside the caller's area."""
    prefixes = scope_prefixes(principal)
    if prefixes is None:
        return true()
    if not prefixes:
        return false()
    return or_(*(code_column.startswith(p, autoescape=True) for p in prefixes))


def event_filter(principal: Principal, grid_code: Any, reported_by: Any) -> ColumnElement[bool]:
    """A SQL condition true for the events the caller may see.

    A reporter sees the events they reported (``reported_by`` = their identity); everyone
    else sees the events whose grid lies in their area (:func:`area_filter`).
    """
    if principal.role is Role.reporter:
        return reported_by == principal.identity  # type: ignore[no-any-return]
    return area_filter(principal, grid_code)


def sees_event(principal: Principal, grid_code: str | None, reported_by: str | None) -> bool:
    """The Python twin of :func:`event_filter` for one event already loaded."""
    if principal.role is Role.reporter:
        return reported_by == principal.identity
    return covers(principal, grid_code)


def covers(principal: Principal, code: str | None) -> bool:
    """True when the caller's area contains the record with this (grid/area) code."""
    prefixes = scope_prefixes(principal)
    if prefixes is None:
        return True
    return code is not None and any(code.startswith(p) for p in prefixes)


def require_covered(principal: Principal, code: str | None, what: str) -> None:
    """NotFoundError (never "forbidden") when ``code`` lies outside the caller's area."""
    if not covers(principal, code):
        raise NotFoundError(f"{what} not found")


def narrow_code(principal: Principal, code: str | None) -> str | None:
    """The area code a scoped caller's aggregate query may use in place of ``code``.

    Unrestricted callers keep ``code``. A code inside the caller's area is kept; a code
    above it (or none) is narrowed to the caller's own area; a code elsewhere is not found.
    """
    prefixes = scope_prefixes(principal)
    if prefixes is None:
        return code
    if code is not None and covers(principal, code):
        return code
    inside = [p for p in prefixes if code is None or p.startswith(code)]
    if len(inside) == 1 and len(inside[0]) >= 6:
        return inside[0]
    if not inside:
        raise NotFoundError(f"area {code} not found")
    raise PermissionDeniedError("name one area of yours with code=")
