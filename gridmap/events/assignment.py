"""Automatic assignment: location → grid → worker, and category (or facility) → department.

Rules (the data they read is in tables, not here):
- grid: ``locate_grid`` — ST_Covers(grid.geom, point), the lowest code when several cover it;
- worker: an on-duty grid worker of the grid (full-time before part-time, then by code),
  else the community's grid leader, else the community itself;
- official affairs go to a department: a component event tied to a facility goes to the
  facility's maintainer, otherwise the category's ``department_code``;
  family affairs stay with the grid worker (helping the household); collaborative affairs
  go to the community;
- a point outside every grid goes to the command-center queue, flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from gridmap.generations import valid_in
from gridmap.models import Area, EventCategory, Facility

COMMAND_CENTER = "command_center"
_PICK_WORKER = text(resources.files("gridmap.events").joinpath("pick_worker.sql").read_text())


@dataclass(frozen=True)
class Assignment:
    """Where an event goes, and why."""

    grid_code: str | None
    generation: int
    worker_code: str | None
    department_code: str | None
    handler_level: str
    queue: str
    flagged: bool
    reason: str


def locate_grid(session: Session, lon: float, lat: float, generation: int) -> str | None:
    """The grid covering WGS84 (lon, lat) in ``generation``; lowest code on shared edges.

    The one point-to-grid call of the events core (to be served by gridmap.lookup later).
    """
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    # psycopg prepares repeated statements, and PostgreSQL's generic plan must not lean on
    # the (level, code) index: with ORDER BY code it walks it testing ST_Covers row by row,
    # with a bound level it ANDs in all 65k grid rows (6–15 ms instead of 0.3 ms at 65k
    # grids). The level is a constant written into the SQL, and ordering by code COLLATE
    # "C" (the same order for digits) keeps the planner on the spatial index.
    return session.scalar(
        select(Area.code)
        .where(Area.level == literal_column("'grid'"), valid_in(generation),
               func.ST_Covers(Area.geom, point))
        .order_by(Area.code.collate("C"))
        .limit(1)
    )


def pick_worker(session: Session, grid_code: str) -> tuple[str | None, str]:
    """(worker code, reason) for a grid: on-duty worker, else the community's leader."""
    row = session.execute(_PICK_WORKER, {"grid": grid_code}).one()
    if row.worker_code:
        return row.worker_code, f"worker {row.worker_name} ({row.worker_code}) on duty"
    if row.leader_code:
        return row.leader_code, (
            f"no worker on duty; grid leader {row.leader_name} ({row.leader_code})")
    return None, f"no worker or leader; community {grid_code[:12]}"


def pick_department(
    session: Session, category: EventCategory, facility_code: str | None
) -> tuple[str | None, str]:
    """(department code, reason) for an official affair."""
    if facility_code:
        maintainer = session.scalar(
            select(Facility.maintainer_department_code).where(Facility.code == facility_code)
        )
        if maintainer:
            return maintainer, f"facility {facility_code} maintained by {maintainer}"
    if category.department_code:
        return category.department_code, (
            f"category {category.code} → department {category.department_code}"
        )
    return None, f"category {category.code} names no department"


def assign(
    session: Session,
    *,
    lon: float,
    lat: float,
    generation: int,
    category: EventCategory,
    affair_class: str,
    facility_code: str | None = None,
) -> Assignment:
    """Decide grid, worker, department and queue for an event at WGS84 (lon, lat)."""
    grid = locate_grid(session, lon, lat, generation)
    if grid is None:
        return Assignment(None, generation, None, None, COMMAND_CENTER, COMMAND_CENTER, True,
                          f"({lon:.6f}, {lat:.6f}) is outside every grid of generation "
                          f"{generation}: command-center queue")
    reasons = [f"grid {grid} by location"]
    worker, why = (None, "collaborative affair: community") if affair_class == "collaborative" \
        else pick_worker(session, grid)
    reasons.append(why)
    department = None
    level = "community" if affair_class == "collaborative" or worker is None else "grid"
    if affair_class == "official":
        department, why = pick_department(session, category, facility_code)
        reasons.append(why)
    elif affair_class == "family":
        reasons.append("family affair: the household's own, grid worker helping")
    return Assignment(grid, generation, worker, department, level,
                      "department" if department else level, False, "; ".join(reasons))
