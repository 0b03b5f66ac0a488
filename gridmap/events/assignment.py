"""Automatic assignment: location → grid → worker, and category (or facility) → department.

Rules (the data they read is in tables, not here):
- grid: the grid covering the point, the lowest code when several cover it — answered by
  the in-memory lookup engine (:class:`~gridmap.lookup.service.LookupService`) when one is
  given, else by PostGIS (``locate_grid``: ST_Covers + the same rule; CLI, scripts);
- worker: an on-duty grid worker of the grid (full-time before part-time, then by code),
  else the community's grid leader (on duty first, then by code), else the community
  itself — from the lookup snapshot's workers when a service is given, else from SQL;
- official affairs go to a department: a component event tied to a facility goes to the
  facility's maintainer, otherwise the category's ``department_code``;
  family affairs stay with the grid worker (helping the household); collaborative affairs
  go to the community;
- a point outside every grid goes to the command-center queue, flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from gridmap.generations import valid_in
from gridmap.lookup.service import DivisionSnapshot, LookupService
from gridmap.models import Area, EventCategory, Facility

COMMAND_CENTER = "command_center"
PICK_WORKER_SQL = resources.files("gridmap.events").joinpath("pick_worker.sql").read_text()
"""The worker rule in SQL: one row per grid of a relation ``grid(code)`` the caller defines
in a WITH clause (see :func:`worker_of`)."""
_PICK_WORKER = text(f"WITH grid AS (SELECT CAST(:grid AS text) AS code)\n{PICK_WORKER_SQL}")


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

    The PostGIS path, for callers without a lookup service (CLI, scripts); the API
    assigns through :func:`locate_in_memory`, which gives the same answer.
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


def locate_in_memory(service: LookupService, lon: float, lat: float
                     ) -> tuple[str | None, DivisionSnapshot]:
    """(grid code or None, snapshot) for WGS84 (lon, lat) from the in-memory lookup engine."""
    res = service.locate_one(lon, lat, "4326")
    index = int(res.index[0])
    return (res.snapshot.index.codes[index] if index >= 0 else None), res.snapshot


def _worker_reason(worker: tuple[str, str] | None, leader: tuple[str, str] | None,
                   grid_code: str) -> tuple[str | None, str]:
    if worker:
        return worker[0], f"worker {worker[1]} ({worker[0]}) on duty"
    if leader:
        return leader[0], f"no worker on duty; grid leader {leader[1]} ({leader[0]})"
    return None, f"no worker or leader; community {grid_code[:12]}"


def worker_of(grid_code: str, worker_code: str | None, worker_name: str | None,
              leader_code: str | None, leader_name: str | None) -> tuple[str | None, str]:
    """(worker code, reason) from a row of :data:`PICK_WORKER_SQL` for ``grid_code``."""
    worker = (worker_code, worker_name or "") if worker_code else None
    leader = (leader_code, leader_name or "") if leader_code else None
    return _worker_reason(worker, leader, grid_code)


def pick_worker(session: Session, grid_code: str) -> tuple[str | None, str]:
    """(worker code, reason) for a grid: on-duty worker, else the community's leader."""
    row = session.execute(_PICK_WORKER, {"grid": grid_code}).one()
    return worker_of(grid_code, row.worker_code, row.worker_name, row.leader_code,
                     row.leader_name)


# (the snapshot's workers dict it was built from, community code → best leader)
_leaders_cache: tuple[object, dict[str, tuple[str, str]]] | None = None


def _community_leaders(workers: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, str]]:
    """Community code → (code, name) of its grid leader: on duty first, then by code."""
    global _leaders_cache
    cached = _leaders_cache
    if cached is not None and cached[0] is workers:
        return cached[1]
    best: dict[str, tuple[bool, str, str]] = {}
    for grid, people in workers.items():
        for w in people:
            if w["role"] != "grid_leader":
                continue
            rank = (not w["on_duty"], w["code"], w["name"])
            if grid[:12] not in best or rank < best[grid[:12]]:
                best[grid[:12]] = rank
    leaders = {community: (r[1], r[2]) for community, r in best.items()}
    _leaders_cache = (workers, leaders)
    return leaders


def pick_worker_in_memory(snap: DivisionSnapshot, grid_code: str) -> tuple[str | None, str]:
    """:func:`pick_worker` from the lookup snapshot (workers reloaded on every change)."""
    # The snapshot lists a grid's workers on duty first, full-time before part-time, by code.
    worker = next(((w["code"], w["name"]) for w in snap.workers.get(grid_code, ())
                   if w["on_duty"] and w["role"] in ("full_time", "part_time")), None)
    leader = None if worker else _community_leaders(snap.workers).get(grid_code[:12])
    return _worker_reason(worker, leader, grid_code)


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
    lookup: LookupService | None = None,
) -> Assignment:
    """Decide grid, worker, department and queue for an event at WGS84 (lon, lat).

    With ``lookup`` the grid and worker come from memory and ``generation`` is the
    snapshot's (the active one); without it, from PostGIS in ``generation``.
    """
    snap = None
    if lookup is not None:
        grid, snap = locate_in_memory(lookup, lon, lat)
        generation = snap.generation
    else:
        grid = locate_grid(session, lon, lat, generation)
    if grid is None:
        return outside(generation, f"({lon:.6f}, {lat:.6f})")
    worker = None
    if affair_class != "collaborative":
        worker = (pick_worker_in_memory(snap, grid) if snap is not None
                  else pick_worker(session, grid))
    department = (pick_department(session, category, facility_code)
                  if affair_class == "official" else None)
    return route(grid, generation, affair_class, worker, department)


def outside(generation: int, where: str) -> Assignment:
    """Where an event at ``where``, outside every grid of ``generation``, goes: the
    command-center queue, flagged, no worker or department."""
    return Assignment(None, generation, None, None, COMMAND_CENTER, COMMAND_CENTER, True,
                      f"{where} is outside every grid of generation {generation}: "
                      "command-center queue")


def route(grid: str, generation: int, affair_class: str,
          worker: tuple[str | None, str] | None,
          department: tuple[str | None, str] | None) -> Assignment:
    """Where an event of ``affair_class`` in ``grid`` goes: worker, level, queue, reason.

    ``worker``: (code, reason) picked for the grid (:func:`pick_worker`; not used for
    collaborative affairs); ``department``: (code, reason) for official affairs
    (:func:`pick_department`).
    """
    reasons = [f"grid {grid} by location"]
    if affair_class == "collaborative":
        worker_code, why = None, "collaborative affair: community"
    else:
        assert worker is not None, "a worker is picked for every affair but collaborative"
        worker_code, why = worker
    reasons.append(why)
    department_code = None
    level = "community" if affair_class == "collaborative" or worker_code is None else "grid"
    if affair_class == "official" and department is not None:
        department_code, why = department
        reasons.append(why)
    elif affair_class == "family":
        reasons.append("family affair: the household's own, grid worker helping")
    return Assignment(grid, generation, worker_code, department_code, level,
                      "department" if department_code else level, False, "; ".join(reasons))
