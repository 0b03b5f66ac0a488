"""Residents of a grid and a person's record, masked by role and audited on every read.

Persons reach their grid through household → building, so the area scope is applied
to ``buildings.grid_code`` inside the query: a record outside the caller's area is
simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gridmap.areas import validate_code
from gridmap.auth import audit
from gridmap.auth.principal import Principal, Role
from gridmap.auth.scope import area_filter
from gridmap.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from gridmap.models import Building, Household, Person

MAX_PAGE = 500
READERS = {Role.admin, Role.operator, Role.grid_worker}
# Who needs the full values: admins (corrections), grid workers (calling their residents).
FULL_ID_NUMBER = {Role.admin}
FULL_PHONE = {Role.admin, Role.grid_worker}


@dataclass(frozen=True)
class PersonRecord:
    """A resident as returned to a caller (personal data already masked for them)."""

    id: int
    name: str
    id_number: str
    phone: str | None
    birth_date: date | None
    gender: str | None
    care_tags: list[str]
    household_code: str
    room: str
    building_code: str
    address: str
    grid_code: str | None


def mask_id_number(value: str) -> str:
    """``110101199001011234`` → ``110***********1234`` (first 3 and last 4 kept)."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """``13812345678`` → ``138****5678``."""
    if value is None:
        return None
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def _check_reader(principal: Principal) -> None:
    if principal.role not in READERS:
        raise PermissionDeniedError(f"role {principal.role.value} may not read residents")


def _base_query(principal: Principal) -> Select:
    return (
        select(Person, Household.code, Household.room, Building.code, Building.address,
               Building.grid_code)
        .join(Household, Household.id == Person.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(area_filter(principal, Building.grid_code))
    )  # fmt: skip


def _record(principal: Principal, row: tuple) -> PersonRecord:  # type: ignore[type-arg]
    person, household, room, building, address, grid = row
    id_number = person.id_number
    if principal.role not in FULL_ID_NUMBER:
        id_number = mask_id_number(id_number)
    phone = person.phone if principal.role in FULL_PHONE else mask_phone(person.phone)
    return PersonRecord(person.id, person.name, id_number, phone, person.birth_date,
                        person.gender, list(person.care_tags or []), household, room,
                        building, address, grid)  # fmt: skip


def grid_residents(
    session: Session, principal: Principal, code: str, *, limit: int = 100, offset: int = 0
) -> tuple[list[PersonRecord], int]:
    """A page of the residents of grid ``code`` (ordered by id) and their total count."""
    _check_reader(principal)
    validate_code(code)
    if len(code) != 15:
        raise InvalidInputError(f"{code} is not a grid code (15 digits)",
                                details=[{"field": "code", "value": code}])  # fmt: skip
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInputError(f"limit must be 1..{MAX_PAGE} and offset ≥ 0",
                                details=[{"field": "limit"}, {"field": "offset"}])  # fmt: skip
    base = _base_query(principal).where(Building.grid_code == code)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if total == 0 and not _grid_visible(session, principal, code):
        raise NotFoundError(f"grid {code} not found")
    rows = session.execute(base.order_by(Person.id).limit(limit).offset(offset)).all()
    records = [_record(principal, tuple(r)) for r in rows]
    for rec in records:
        audit.record(session, principal, "read", "person", str(rec.id), {"via": f"grid:{code}"})
    return records, int(total)


def _grid_visible(session: Session, principal: Principal, code: str) -> bool:
    from gridmap.models import Area

    count = session.scalar(
        select(func.count()).select_from(Area)
        .where(Area.code == code, area_filter(principal, Area.code))
    )  # fmt: skip
    return bool(count)


def get_person(session: Session, principal: Principal, person_id: int) -> PersonRecord:
    """One person's record; NotFoundError when unknown *or* outside the caller's area."""
    _check_reader(principal)
    row = session.execute(_base_query(principal).where(Person.id == person_id)).first()
    if row is None:
        raise NotFoundError(f"person {person_id} not found")
    audit.record(session, principal, "read", "person", str(person_id))
    return _record(principal, tuple(row))
