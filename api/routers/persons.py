"""Residents of a grid and persons: masked by role, every read audited."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.dependencies import SessionDep
from api.schemas import ErrorOut, PersonOut, ResidentsOut
from api.security import PrincipalDep
from gridmap import persons

router = APIRouter(prefix="/api/v1", tags=["persons"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut},
    422: {"model": ErrorOut},
}  # fmt: skip


def _person(rec: persons.PersonRecord) -> dict[str, Any]:
    out = asdict(rec)
    out["birth_date"] = rec.birth_date.isoformat() if rec.birth_date else None
    return out


@router.get(
    "/grids/{code}/residents", operation_id="list_grid_residents", response_model=ResidentsOut,
    responses=ERRORS,
)
def list_residents(
    code: Annotated[str, Path(description="15-digit grid code")],
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=persons.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    """The grid's residents (personal data masked by role); each read is audited."""
    records, total = persons.grid_residents(session, principal, code, limit=limit, offset=offset)
    return {"grid": code, "total": total, "limit": limit, "offset": offset,
            "residents": [_person(r) for r in records]}  # fmt: skip


@router.get(
    "/persons/{person_id}", operation_id="get_person", response_model=PersonOut,
    responses=ERRORS,
)
def get_person(
    person_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
    principal: PrincipalDep,
) -> Any:
    """One person (404 when unknown or outside the caller's area); the read is audited."""
    return _person(persons.get_person(session, principal, person_id))
