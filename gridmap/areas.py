"""Reading the division: an area with its ancestors, children, geometry, grid profiles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, text, true
from sqlalchemy.orm import Session

from gridmap.auth.principal import Principal
from gridmap.auth.scope import area_filter
from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.generations import active_generation_id, resolve_generation, valid_in, valid_in_sql
from gridmap.models import LEVEL_ORDER, Area, Level

_CODE_LENGTHS = {6, 9, 12, 15}


@dataclass(frozen=True)
class AreaSummary:
    """An area without geometry."""

    code: str
    level: str
    name: str
    parent_code: str | None
    generation_low: int
    generation_high: int | None


@dataclass(frozen=True)
class AreaDetail:
    """An area, its ancestors (top first) and its bounding box."""

    area: AreaSummary
    ancestors: list[AreaSummary]
    bbox: tuple[float, float, float, float]
    generation: int


@dataclass(frozen=True)
class GridProfile:
    """The "holographic" summary of one grid: people, houses, objects, workers."""

    grid: AreaSummary
    ancestors: list[AreaSummary]
    persons: int
    households: int
    buildings: int
    care: dict[str, int]
    facilities_by_class: dict[str, int]
    workers: list[dict[str, Any]] = field(default_factory=list)
    counted: str = "assigned"


def validate_code(code: str) -> str:
    """Reject codes that cannot name an area (digits only, 6/9/12/15 long)."""
    if not code.isdigit() or len(code) not in _CODE_LENGTHS:
        raise InvalidInputError(
            f"area code {code!r} is malformed: expected 6, 9, 12 or 15 digits",
            details=[{"field": "code", "value": code}],
        )
    return code


def _summary(row: Area) -> AreaSummary:
    return AreaSummary(
        code=row.code,
        level=row.level,
        name=row.name,
        parent_code=row.parent_code,
        generation_low=row.generation_low,
        generation_high=row.generation_high,
    )


def _find(
    session: Session, code: str, generation: int, principal: Principal | None = None
) -> Area:
    # Outside the caller's area reads exactly like a missing area.
    scope = true() if principal is None else area_filter(principal, Area.code)
    row = session.scalar(select(Area).where(Area.code == code, valid_in(generation), scope))
    if row is None:
        raise _not_in_generation(session, code, generation, scope)
    return row


def _not_in_generation(session: Session, code: str, generation: int,
                       scope: ColumnElement[bool]) -> NotFoundError:  # fmt: skip
    """The error for an area missing from ``generation``: it names the generations the
    code is valid in, if any (a removed area is still there to ask for)."""
    ranges = session.execute(
        select(Area.generation_low, Area.generation_high)
        .where(Area.code == code, scope).order_by(Area.generation_low)
    ).all()
    message = f"area {code} not found in generation {generation}"
    if not ranges:
        return NotFoundError(message)
    spans = ", ".join(_span(low, high) for low, high in ranges)
    return NotFoundError(
        f"{message}; it is valid in {spans}",
        details=[{"field": "generation", "generation_low": low, "generation_high": high}
                 for low, high in ranges],
    )  # fmt: skip


def _span(low: int, high: int | None) -> str:
    if high is None:
        return f"generation {low} on"
    return f"generation {low}" if low == high else f"generations {low}–{high}"


def ancestors_of(session: Session, area: Area, generation: int) -> list[AreaSummary]:
    """Ancestors of ``area`` from the top (city) down to its parent."""
    chain: list[AreaSummary] = []
    parent = area.parent_code
    while parent:
        row = session.scalar(select(Area).where(Area.code == parent, valid_in(generation)))
        if row is None:
            break
        chain.append(_summary(row))
        parent = row.parent_code
    return list(reversed(chain))


def get_area(
    session: Session, code: str, generation: int | None = None,
    principal: Principal | None = None,
) -> AreaDetail:
    """The area ``code`` valid in ``generation`` (default: active) with its ancestors."""
    gen = resolve_generation(session, generation)
    row = _find(session, validate_code(code), gen, principal)
    box = session.execute(
        select(
            func.ST_XMin(row.geom), func.ST_YMin(row.geom),
            func.ST_XMax(row.geom), func.ST_YMax(row.geom),
        )
    ).one()
    return AreaDetail(
        area=_summary(row),
        ancestors=ancestors_of(session, row, gen),
        bbox=(box[0], box[1], box[2], box[3]),
        generation=gen,
    )


def children_of(
    session: Session, code: str, generation: int | None = None,
    principal: Principal | None = None,
) -> list[AreaSummary]:
    """Direct children of ``code`` ordered by code (reading order of their sequence)."""
    gen = resolve_generation(session, generation)
    _find(session, validate_code(code), gen, principal)
    rows = session.scalars(
        select(Area).where(Area.parent_code == code, valid_in(gen)).order_by(Area.code)
    )
    return [_summary(r) for r in rows]


def area_geojson(
    session: Session, code: str, generation: int | None = None,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """The area as a GeoJSON Feature (geometry in EPSG:4326)."""
    gen = resolve_generation(session, generation)
    row = _find(session, validate_code(code), gen, principal)
    geometry = session.scalar(select(func.ST_AsGeoJSON(row.geom, 7)))
    return {
        "type": "Feature",
        "id": row.code,
        "properties": {"code": row.code, "level": row.level, "name": row.name,
                       "parent_code": row.parent_code, "generation": gen},
        "geometry": json.loads(geometry or "null"),
    }


# The buildings and facilities a profile counts. In the active generation: those assigned
# to the grid. In any other (assignments keep no history): today's buildings and
# facilities lying in that generation's grid, by the rule re-assignment uses (a
# building's point on surface, a facility's point; the lowest code where grids touch).
_ASSIGNED_BUILDINGS = "SELECT id FROM buildings WHERE grid_code = :code"
_ASSIGNED_FACILITIES = "SELECT id FROM facilities WHERE grid_code = :code"


def _located(table: str, point: str) -> str:
    """The ids of ``table``'s rows whose ``point`` lies in the grid ``:area_id`` and in
    no lower-coded grid of generation ``:gen``."""
    return f"""
    SELECT t.id FROM {table} t, areas g
    WHERE g.id = :area_id AND t.geom && g.geom AND ST_Covers(g.geom, {point})
      AND NOT EXISTS (
          SELECT 1 FROM areas o
          WHERE o.level = 'grid' AND o.code < g.code AND {valid_in_sql(":gen", "o")}
            AND ST_Covers(o.geom, {point}))
"""


_LOCATED_BUILDINGS = _located("buildings", "ST_PointOnSurface(t.geom)")
_LOCATED_FACILITIES = _located("facilities", "t.geom")


_PROFILE_SQL = """
    WITH b AS ({buildings}),
         h AS (SELECT id FROM households WHERE building_id IN (SELECT id FROM b))
    SELECT (SELECT count(*) FROM b) AS buildings,
           (SELECT count(*) FROM h) AS households,
           (SELECT count(*) FROM persons WHERE household_id IN (SELECT id FROM h)) AS persons
"""

_CARE_SQL = """
    WITH b AS ({buildings})
    SELECT tag, count(*) FROM persons p
    JOIN households h ON h.id = p.household_id,
    unnest(p.care_tags) AS tag
    WHERE h.building_id IN (SELECT id FROM b) GROUP BY tag ORDER BY tag
"""

_FACILITIES_SQL = """
    WITH f AS ({facilities})
    SELECT major_code || minor_code AS cls, count(*) FROM facilities
    WHERE id IN (SELECT id FROM f) GROUP BY cls ORDER BY cls
"""

_WORKERS_SQL = text(
    """
    SELECT w.code, w.name, w.role, w.on_duty FROM workers w
    JOIN worker_assignments a ON a.worker_id = w.id
    WHERE a.grid_code = :code
    ORDER BY w.on_duty DESC, CASE w.role WHEN 'full_time' THEN 0 WHEN 'part_time' THEN 1
             ELSE 2 END, w.code
    """
)


def grid_profile(
    session: Session, code: str, generation: int | None = None,
    principal: Principal | None = None,
) -> GridProfile:
    """Counts of people, households, buildings, facilities by class, and the workers.

    In the active generation the counts are of what is assigned to the grid; in any
    other (``counted`` says "located") of today's buildings and facilities that lie in
    that generation's grid. Workers are today's assignments to the code.
    Workers' phones are personal data and are not part of the profile.
    """
    gen = resolve_generation(session, generation)
    row = _find(session, validate_code(code), gen, principal)
    if row.level != Level.grid.value:
        raise InvalidInputError(f"area {code} is a {row.level}, not a grid")
    # Asked for by id only: without one the answer is the active generation's, even if
    # another was activated since ``resolve_generation`` read it.
    located = generation is not None and gen != active_generation_id(session)
    sets = {"buildings": _LOCATED_BUILDINGS if located else _ASSIGNED_BUILDINGS,
            "facilities": _LOCATED_FACILITIES if located else _ASSIGNED_FACILITIES}
    params = {"code": code, "area_id": row.id, "gen": gen}

    def query(statement: str) -> Any:
        return session.execute(text(statement.format(**sets)), params)

    counts = query(_PROFILE_SQL).one()
    care = {tag: n for tag, n in query(_CARE_SQL)}
    facilities = {cls: n for cls, n in query(_FACILITIES_SQL)}
    workers = [
        {"code": c, "name": n, "role": r, "on_duty": d}
        for c, n, r, d in session.execute(_WORKERS_SQL, {"code": code})
    ]
    return GridProfile(
        grid=_summary(row),
        ancestors=ancestors_of(session, row, gen),
        persons=counts.persons,
        households=counts.households,
        buildings=counts.buildings,
        care=care,
        facilities_by_class=facilities,
        workers=workers,
        counted="located" if located else "assigned",
    )


def level_of_code(code: str) -> Level:
    """The level a code of this length names (6 digits: district, or city if it ends 0000)."""
    validate_code(code)
    if len(code) == 6:
        return Level.city if code.endswith("0000") else Level.district
    return next(lv for lv in LEVEL_ORDER if lv.code_length == len(code) and len(code) > 6)


@dataclass(frozen=True)
class AreaHit:
    """A search result: the area and its bounding box (west, south, east, north)."""

    area: AreaSummary
    bbox: tuple[float, float, float, float]


_LEVEL_RANK = {level.value: i for i, level in enumerate(LEVEL_ORDER)}


def search_areas(
    session: Session, q: str, *, limit: int = 20, generation: int | None = None,
    principal: Principal | None = None,
) -> list[AreaHit]:
    """Areas valid in ``generation`` whose code starts with ``q`` or whose name contains it.

    Exact code matches come first, then higher levels (districts before grids), then codes.
    """
    q = q.strip()
    if not q:
        raise InvalidInputError("search text q is empty", details=[{"field": "q"}])
    if not 1 <= limit <= 100:
        raise InvalidInputError("limit must be 1..100", details=[{"field": "limit"}])
    gen = resolve_generation(session, generation)
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches: ColumnElement[bool] = Area.name.ilike(f"%{pattern}%", escape="\\")
    if q.isdigit():
        matches = matches | Area.code.startswith(q, autoescape=True)
    if principal is not None:
        matches = matches & area_filter(principal, Area.code)
    rank = case(_LEVEL_RANK, value=Area.level, else_=len(_LEVEL_RANK))
    rows = session.execute(
        select(
            Area,
            func.ST_XMin(Area.geom), func.ST_YMin(Area.geom),
            func.ST_XMax(Area.geom), func.ST_YMax(Area.geom),
        )
        .where(matches, valid_in(gen))
        .order_by((Area.code == q).desc(), rank, Area.code)
        .limit(limit)
    ).all()
    return [AreaHit(_summary(r[0]), (r[1], r[2], r[3], r[4])) for r in rows]
