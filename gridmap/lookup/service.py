"""The lookup service: PostGIS is the truth, answers come from memory.

A :class:`LookupService` keeps a :class:`DivisionSnapshot` of the active generation
(the :class:`~gridmap.lookup.engine.GridIndex`, every area's name and parent, the
workers of every grid) and rebuilds it when the database says a generation was
activated or workers changed (``LISTEN gridmap_generation`` / ``gridmap_workers``,
sent by triggers from migration ``0005_lookup``). Past generations asked for with
``as_of`` are built on demand and kept in a small LRU.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from sqlalchemy.engine import make_url

from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.generations import valid_in_sql
from gridmap.lookup.cache import cache_key, load_or_build
from gridmap.lookup.crs import to_wgs84
from gridmap.lookup.engine import GridIndex

log = logging.getLogger(__name__)

CHANNELS = ("gridmap_generation", "gridmap_workers")
ANCESTOR_LEVELS = ("community", "street", "district", "city")
_GEOGRAPHIC = {"4326", "epsg:4326", "4490", "epsg:4490", "gcj02", "bd09"}
_AS_IS = {"4326", "epsg:4326", "4490", "epsg:4490"}  # stored as EPSG:4326 unchanged
_EMPTY = -1
_HISTORY_SIZE = 2

_AREAS_SQL = f"""
SELECT code, level, name, parent_code, ST_AsBinary(geom) AS wkb
FROM areas
WHERE {valid_in_sql("%(gen)s")}
ORDER BY code
"""

_WORKERS_SQL = """
SELECT a.grid_code, w.code, w.name, w.role, w.on_duty
FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
ORDER BY a.grid_code, w.on_duty DESC,
         CASE w.role WHEN 'full_time' THEN 0 WHEN 'part_time' THEN 1 ELSE 2 END, w.code
"""


@dataclass(frozen=True)
class AreaRecord:
    """An area's identity without geometry."""

    code: str
    level: str
    name: str
    parent_code: str | None


@dataclass
class DivisionSnapshot:
    """Everything a lookup answer needs, for one generation, held in memory."""

    generation: int
    index: GridIndex
    areas: dict[str, AreaRecord]
    workers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def ancestors(self, code: str) -> dict[str, dict[str, str]]:
        """The chain above ``code`` keyed by level (community, street, district, city)."""
        chain: dict[str, dict[str, str]] = {}
        parent = self.areas[code].parent_code if code in self.areas else None
        while parent and parent in self.areas:
            record = self.areas[parent]
            chain[record.level] = {"code": record.code, "name": record.name}
            parent = record.parent_code
        return chain


@dataclass
class PointResults:
    """Answers for a batch of points, in input order."""

    generation: int
    snapshot: DivisionSnapshot
    index: npt.NDArray[np.int32]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    errors: dict[int, str]
    distance_m: npt.NDArray[np.float64] | None = None


def check_coordinates(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], crs: str
) -> dict[int, str]:
    """Row → problem for coordinates that cannot be looked up (NaN, out of range)."""
    bad: dict[int, str] = {}
    for row in np.flatnonzero(~np.isfinite(x)).tolist():
        bad[row] = "lon: not a finite number"
    for row in np.flatnonzero(~np.isfinite(y)).tolist():
        bad.setdefault(row, "lat: not a finite number")
    if crs.lower() in _GEOGRAPHIC:
        with np.errstate(invalid="ignore"):
            for row in np.flatnonzero(np.abs(x) > 180).tolist():
                bad.setdefault(row, f"lon: {x[row]} is outside -180..180")
            for row in np.flatnonzero(np.abs(y) > 90).tolist():
                bad.setdefault(row, f"lat: {y[row]} is outside -90..90")
    return bad


def _check_point(x: float, y: float) -> str | None:
    """:func:`check_coordinates` for one longitude/latitude, without array overhead."""
    if not math.isfinite(x):
        return "lon: not a finite number"
    if not math.isfinite(y):
        return "lat: not a finite number"
    if abs(x) > 180:
        return f"lon: {x} is outside -180..180"
    if abs(y) > 90:
        return f"lat: {y} is outside -90..90"
    return None


class LookupService:
    """Point → grid answers from memory, kept in step with the database."""

    def __init__(self, url: str, cache_dir: Path | None = None):
        """``cache_dir``: share built indexes between processes through files there."""
        self._url = url
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._active: DivisionSnapshot | None = None
        self._history: OrderedDict[int, DivisionSnapshot] = OrderedDict()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    # -- snapshots ---------------------------------------------------------------

    def active(self) -> DivisionSnapshot:
        """The snapshot of the active generation (built on first use)."""
        snap = self._active
        if snap is None:
            with self._lock:
                if self._active is None:
                    self._active = self._build(self._active_generation())
                snap = self._active
        return snap

    def snapshot(self, as_of: int | str | datetime | None = None) -> DivisionSnapshot:
        """The snapshot valid ``as_of`` a generation id or a timestamp (default: now)."""
        if as_of is None or as_of == "":
            return self.active()
        generation = self._resolve_as_of(as_of)
        active = self.active()
        if generation == active.generation:
            return active
        with self._lock:
            snap = self._history.get(generation)
            if snap is None:
                snap = self._build(generation)
                self._history[generation] = snap
                while len(self._history) > _HISTORY_SIZE:
                    self._history.popitem(last=False)
            self._history.move_to_end(generation)
            return snap

    def refresh(self) -> bool:
        """Rebuild the active snapshot if another generation became active."""
        current = self._active_generation()
        if self._active is not None and self._active.generation == current:
            return False
        snap = self._build(current)
        with self._lock:
            self._active = snap
        log.info("lookup index now serves generation %s", current)
        return True

    def reload_workers(self) -> None:
        """Reload the workers of every grid into the active snapshot."""
        snap = self._active
        if snap is not None:
            snap.workers = self._load_workers()

    # -- answers -----------------------------------------------------------------

    def locate(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        crs: str = "4326",
        as_of: int | str | datetime | None = None,
        snap_m: float | None = None,
    ) -> PointResults:
        """Grid index per point; bad rows get -1 and an entry in ``errors``."""
        xs = np.asarray(x, dtype=np.float64).ravel()
        ys = np.asarray(y, dtype=np.float64).ravel()
        errors = check_coordinates(xs, ys, crs)
        lon, lat = to_wgs84(xs, ys, crs)
        snap = self.snapshot(as_of)
        if snap_m is None:
            idx = snap.index.lookup(lon, lat)
            distance = None
        else:
            if not (snap_m >= 0 and np.isfinite(snap_m)):
                raise InvalidInputError(
                    f"snap must be a distance in metres >= 0, got {snap_m}",
                    details=[{"field": "snap", "value": snap_m}],
                )
            idx, distance = snap.index.nearest(lon, lat, snap_m)
        if errors:
            idx[list(errors)] = -1
        return PointResults(snap.generation, snap, idx, lon, lat, errors, distance)

    def locate_one(
        self,
        x: float,
        y: float,
        crs: str = "4326",
        as_of: int | str | datetime | None = None,
        snap_m: float | None = None,
    ) -> PointResults:
        """:meth:`locate` for one point; WGS84 input without snap skips array work."""
        if snap_m is not None or crs.lower() not in _AS_IS:
            return self.locate([x], [y], crs, as_of, snap_m)
        xs, ys = np.array([x], np.float64), np.array([y], np.float64)
        problem = _check_point(x, y)
        errors = {0: problem} if problem else {}
        snap = self.snapshot(as_of)
        grid = _EMPTY if errors else snap.index.lookup_one(x, y)
        index = np.array([grid], np.int32)
        return PointResults(snap.generation, snap, index, xs, ys, errors)

    @staticmethod
    def describe(snap: DivisionSnapshot, grid_index: int) -> dict[str, Any] | None:
        """The grid, its ancestors and its workers (on duty first) for one answer."""
        if grid_index < 0:
            return None
        code = snap.index.codes[grid_index]
        record = snap.areas[code]
        return {
            "grid": {"code": code, "name": record.name, "generation": snap.generation},
            "ancestors": snap.ancestors(code),
            "workers": snap.workers.get(code, []),
        }

    # -- change notifications ----------------------------------------------------

    def start_listener(self) -> None:
        """Follow generation and worker changes in a daemon thread (LISTEN/NOTIFY)."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, name="gridmap-lookup", daemon=True)
        self._listener.start()

    def stop_listener(self) -> None:
        """Stop following changes."""
        self._stop.set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    self._catch_up()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._on_notify(note.channel)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("lookup listener lost the database (%s); retrying", exc)
                self._stop.wait(2.0)

    def _catch_up(self) -> None:
        # Changes made while we were not listening would otherwise be missed.
        if self._active is not None:
            self.refresh()
            self.reload_workers()

    def _on_notify(self, channel: str) -> None:
        if channel == "gridmap_generation":
            self.refresh()
        elif channel == "gridmap_workers":
            self.reload_workers()

    # -- loading -----------------------------------------------------------------

    def _active_generation(self) -> int:
        with psycopg.connect(self._url) as conn:
            row = conn.execute("SELECT id FROM generations WHERE active").fetchone()
        if row is None:
            raise NotFoundError("no active generation: load a division first (gridmap sample)")
        return int(row[0])

    def _resolve_as_of(self, as_of: int | str | datetime) -> int:
        with psycopg.connect(self._url) as conn:
            if isinstance(as_of, int) or (isinstance(as_of, str) and as_of.isdigit()):
                row = conn.execute(
                    "SELECT id FROM generations WHERE id = %s AND activated_at IS NOT NULL",
                    (int(as_of),),
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"generation {as_of} does not exist or was never active")
                return int(row[0])
            when = _parse_time(as_of)
            row = conn.execute(
                "SELECT id FROM generations WHERE activated_at <= %s "
                "ORDER BY activated_at DESC LIMIT 1",
                (when,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no generation was active at {when.isoformat()}")
        return int(row[0])

    def _build(self, generation: int) -> DivisionSnapshot:
        started = time.perf_counter()
        with psycopg.connect(self._url) as conn:
            rows = conn.execute(_AREAS_SQL, {"gen": generation}).fetchall()
            created = conn.execute(
                "SELECT created_at FROM generations WHERE id = %s", (generation,)
            ).fetchone()
        areas = {r[0]: AreaRecord(r[0], r[1], r[2], r[3]) for r in rows}
        grids = [r for r in rows if r[1] == "grid"]

        def build() -> GridIndex:
            geoms = shapely.from_wkb([bytes(r[4]) for r in grids])
            return GridIndex.build([r[0] for r in grids], geoms, generation)

        if self._cache_dir is None:
            index = build()
        else:
            key = cache_key(_database_name(self._url), generation, created and created[0])
            index = load_or_build(self._cache_dir, key, build)
        snap = DivisionSnapshot(generation, index, areas, self._load_workers())
        log.info(
            "lookup index for generation %s (%d grids) ready in %.1fs",
            generation,
            len(grids),
            time.perf_counter() - started,
        )
        return snap

    def _load_workers(self) -> dict[str, list[dict[str, Any]]]:
        workers: dict[str, list[dict[str, Any]]] = {}
        with psycopg.connect(self._url) as conn:
            for grid, code, name, role, on_duty in conn.execute(_WORKERS_SQL):
                workers.setdefault(grid, []).append(
                    {"code": code, "name": name, "role": role, "on_duty": on_duty}
                )
        return workers


def _database_name(url: str) -> str:
    """The URL without credentials: identifies the database in cache keys."""
    return make_url(url).render_as_string(hide_password=True)


def _parse_time(value: str | datetime) -> datetime:
    """``as_of`` as an aware timestamp: one without an offset is UTC (left naive, the
    database would read it in its own time zone, whatever that is)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(
                f"as_of {value!r} is neither a generation id nor an ISO 8601 timestamp",
                details=[{"field": "as_of", "value": value}],
            ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
