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

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridmap.generations import valid_in
from gridmap.models import Area, EventCategory, Facility, Worker, WorkerAssignment

COMMAND_CENTER = "command_center"


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
    # psycopg prepares repeated statements; PostgreSQL's generic plan for this one walks
    # the (level, code) index in code order testing ST_Covers row by row (~6 ms at 65k
    # grids instead of ~0.3 ms). Plan with the actual point instead.
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    return session.scalar(
        select(Area.code)
        .where(Area.level == "grid", valid_in(generation), func.ST_Covers(Area.geom, point))
        .order_by(Area.code)
        .limit(1)
    )


def pick_worker(session: Session, grid_code: str) -> tuple[str | None, str]:
    """(worker code, reason) for a grid: on-duty worker, else the community's leader."""
    on_duty = session.execute(
        select(Worker.code, Worker.name)
        .join(WorkerAssignment, WorkerAssignment.worker_id == Worker.id)
        .where(
            WorkerAssignment.grid_code == grid_code,
            Worker.on_duty,
            Worker.role.in_(("full_time", "part_time")),
        )
        .order_by(text("CASE workers.role WHEN 'full_time' THEN 0 ELSE 1 END"), Worker.code)
        .limit(1)
    ).first()
    if on_duty:
        return on_duty.code, f"worker {on_duty.name} ({on_duty.code}) on duty"
    leader = session.execute(
        select(Worker.code, Worker.name)
        .join(WorkerAssignment, WorkerAssignment.worker_id == Worker.id)
        .where(
            WorkerAssignment.grid_code.startswith(grid_code[:12]),
            Worker.role == "grid_leader",
        )
        .order_by(Worker.on_duty.desc(), Worker.code)
        .limit(1)
    ).first()
    if leader:
        return leader.code, f"no worker on duty; grid leader {leader.name} ({leader.code})"
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
