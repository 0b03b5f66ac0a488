"""In-memory point → grid engine: ``ST_Covers(grid, point)`` + lowest code, at numpy speed.

Rules (DESIGN.md, "Point-to-grid lookup"): a point belongs to the grids that *cover* it
(interior or boundary, as GEOS ``covers`` decides), and when several do — a shared
edge or vertex, or overlapping grids — to the one with the lowest code.

Method
------
*Raster.* A regular raster of leaf cells spans the grids' bounding box. Every cell is
classified top-down through a quadtree, by exact predicates on the cell's closed box
grown by 1e-9° (so a point that floating-point rounding maps into a neighbouring cell is
still inside the box the cell was classified with):

- a cell whose lowest-code intersecting grid covers the whole box is *interior*: the
  raster stores that grid and the lookup is one array read;
- a cell that no grid intersects is *empty* (-1);
- anything else is a *boundary* cell and is split, down to the leaf level.

Which ring segments cross a box is decided exactly: envelope comparisons and "an
endpoint lies in the box" are exact in floating point, every other segment/box pair goes
to GEOS ``intersects``. A box that no segment of a grid crosses lies wholly inside or
wholly outside that grid, so one GEOS ``contains_xy`` at its centre decides it (one point
decides because no boundary passes through the box — this is not sampling). The root
level comes from two GEOS ``STRtree`` queries (grids and segments against the boxes).

*Boundary leaves.* Each boundary leaf cell keeps its candidate grids in code order, up
to and including the first one covering the whole cell, each with a local model:

- ``HALF``: one edge of the grid crosses the box and none of its vertices lies in it,
  so inside the box the grid is exactly the closed half-plane left of that edge (rings
  are oriented with the interior on the left);
- ``AND``/``OR``: two consecutive edges u→v→w of the grid cross the box (v inside it or
  not, u and w outside) and nothing else of the grid does, so the grid is the
  intersection (convex corner at v) or union (reflex corner) of their two half-planes;
- ``FULL``: covers the box. A ``HALF`` right after a ``HALF`` on the same edge reversed
  (two grids sharing an edge exactly) also becomes ``FULL``: it is only reached for
  points strictly on the far side of the first grid's edge;
- ``COMPLEX``: anything else, or an invalid polygon — asked of GEOS ``intersects_xy``
  (for a point, intersects is covers).

A lookup walks the candidates in code order and stops at the first that covers the
point. Side tests are float orientation determinants with Shewchuk's error bound
(|det| > (3 + 16ε)ε(|l| + |r|) has the exact sign). Inside the bound — points on or
within ~1e-15 relative of an edge — the sign is recomputed exactly with error-free
transformations (TwoDiff/TwoProduct/Two-Two-Diff); when a coordinate difference is not
itself a double (never for points near their cell in lon/lat) GEOS answers instead.
GEOS decides ``covers`` for a point from the same orientation sign, computed robustly
(a filter, then double-double arithmetic, which is exact for such inputs), so both
agree point for point, on edges and vertices included.

PostGIS's own ``ST_Covers(polygon, point)`` short-circuit uses a plain-double side test
(``lw_segment_side``), so for points within ~1e-15 relative of an edge PostGIS itself can
differ from GEOS; this engine follows GEOS (shapely).

*Snapping.* :meth:`GridIndex.nearest` — see its docstring.

Thread safety: lookups only read numpy arrays; the few GEOS calls on shared prepared
geometries are serialised by a lock, because GEOS prepared geometries are not
thread-safe (libgeos/geos#825).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from gridmap.errors import InvalidInputError

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

_FULL, _HALF, _AND, _OR, _COMPLEX = 0, 1, 2, 3, 4
_EMPTY = -1
_OPEN = -2
_PAD_DEG = 1e-9
_EPS = 2.0**-53
_CCW_ERRBOUND = (3.0 + 16.0 * _EPS) * _EPS
_SPLITTER = 134217729.0  # 2**27 + 1, Dekker's split for exact products without FMA
_PAIRS_PER_SLICE = 1 << 17
_WGS84_A = 6378137.0
_WGS84_E2 = 0.00669437999014
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class IndexStats:
    """Size and shape of a built :class:`GridIndex`.

    ``interior_fraction``/``empty_fraction``/``boundary_fraction`` are shares of leaf
    cells (hence of the raster's area) answered by one read, by -1, or by side tests.
    """

    grids: int
    generation: int
    cells: int
    cell_size_deg: float
    levels: int
    interior_fraction: float
    empty_fraction: float
    boundary_fraction: float
    boundary_cells: int
    constraints: int
    complex_constraints: int
    segments: int
    build_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class _Segments:
    """Every ring edge of every grid, interior on the left."""

    xy: FloatArray  # (n, 4): ax, ay, bx, by
    grid: IntArray
    nxt: IntArray  # next edge along the same ring
    lines: ObjArray  # the same edges as LineStrings, for GEOS

    @property
    def size(self) -> int:
        return int(self.grid.size)


@dataclass(frozen=True)
class _Frame:
    """Raster geometry: leaf cell ``(i, j)`` spans ``x0 + i*size`` … ``x0 + (i+1)*size``."""

    x0: float
    y0: float
    size: float
    nx: int
    ny: int
    depth: int

    def cell_size(self, level: int) -> float:
        return self.size * float(1 << (self.depth - level))

    def dims(self, level: int) -> tuple[int, int]:
        shift = self.depth - level
        return self.nx >> shift, self.ny >> shift

    def bounds(
        self, level: int, ix: IntArray, iy: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        s = self.cell_size(level)
        return (
            np.asarray(self.x0 + ix * s - _PAD_DEG, np.float64),
            np.asarray(self.y0 + iy * s - _PAD_DEG, np.float64),
            np.asarray(self.x0 + (ix + 1) * s + _PAD_DEG, np.float64),
            np.asarray(self.y0 + (iy + 1) * s + _PAD_DEG, np.float64),
        )

    def centres(self, level: int, ix: IntArray, iy: IntArray) -> tuple[FloatArray, FloatArray]:
        s = self.cell_size(level)
        x = np.asarray(self.x0 + (ix + 0.5) * s, np.float64)
        return x, np.asarray(self.y0 + (iy + 0.5) * s, np.float64)


@dataclass
class _Open:
    """Boundary cells of one level and what crosses them.

    ``seg_*`` pairs are grouped by cell; ``cand_*`` pairs by cell, then code order.
    """

    ix: IntArray
    iy: IntArray
    seg_cell: IntArray
    seg: IntArray
    cand_cell: IntArray
    cand_grid: IntArray
    cand_full: BoolArray

    @property
    def size(self) -> int:
        return int(self.ix.size)

    @classmethod
    def empty(cls) -> _Open:
        none = np.zeros(0, np.int64)
        return cls(none, none, none, none, none, none, np.zeros(0, bool))

    def slices(self, pairs: int) -> list[tuple[int, int]]:
        """Consecutive cell ranges holding about ``pairs`` segment and candidate pairs."""
        load = np.bincount(self.seg_cell, minlength=self.size)
        load += np.bincount(self.cand_cell, minlength=self.size)
        total = np.cumsum(load)
        cuts = np.searchsorted(total, np.arange(pairs, int(total[-1]) if total.size else 0, pairs))
        bounds = np.unique(np.r_[0, cuts + 1, self.size].clip(0, self.size))
        return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

    def slice(self, lo: int, hi: int) -> _Open:
        """Cells ``lo:hi`` with their pairs, renumbered from 0."""
        s_lo, s_hi = np.searchsorted(self.seg_cell, (lo, hi))
        c_lo, c_hi = np.searchsorted(self.cand_cell, (lo, hi))
        return _Open(
            ix=self.ix[lo:hi],
            iy=self.iy[lo:hi],
            seg_cell=self.seg_cell[s_lo:s_hi] - lo,
            seg=self.seg[s_lo:s_hi],
            cand_cell=self.cand_cell[c_lo:c_hi] - lo,
            cand_grid=self.cand_grid[c_lo:c_hi],
            cand_full=self.cand_full[c_lo:c_hi],
        )

    @classmethod
    def join(cls, parts: Sequence[_Open]) -> _Open:
        """Concatenate slices, renumbering cells consecutively."""
        offsets = np.cumsum([0, *(part.size for part in parts)])
        return _Open(
            ix=np.concatenate([part.ix for part in parts]),
            iy=np.concatenate([part.iy for part in parts]),
            seg_cell=np.concatenate([p.seg_cell + o for p, o in zip(parts, offsets, strict=False)]),
            seg=np.concatenate([part.seg for part in parts]),
            cand_cell=np.concatenate(
                [p.cand_cell + o for p, o in zip(parts, offsets, strict=False)]
            ),
            cand_grid=np.concatenate([part.cand_grid for part in parts]),
            cand_full=np.concatenate([part.cand_full for part in parts]),
        )


@dataclass(frozen=True)
class _Constraints:
    """Per boundary leaf cell ``k``: rows ``start[k]:start[k+1]``, in code order."""

    start: IntArray
    kind: npt.NDArray[np.int8]
    grid: Int32Array
    seg1: IntArray
    seg2: IntArray


class GridIndex:
    """Exact in-memory point → grid index (``ST_Covers`` + lowest code wins).

    Build with :meth:`build`; query with :meth:`lookup` and :meth:`nearest`.
    Coordinates are EPSG:4326 longitude/latitude degrees.
    """

    def __init__(
        self,
        codes: tuple[str, ...],
        geoms: ObjArray,
        generation: int,
        frame: _Frame,
        raster: Int32Array,
        constraints: _Constraints,
        segments: _Segments,
        build_seconds: float,
    ) -> None:
        self.codes = codes
        self.generation = generation
        self._geoms = geoms
        self._frame = frame
        self._raster = raster
        self._raster_flat = raster.ravel()
        self._cons = constraints
        self._seg_xy = segments.xy
        self._n_segments = segments.size
        self._tree = STRtree(geoms)
        self._build_seconds = build_seconds
        self._geos_lock = threading.Lock()
        self._ranks = _ranks(codes)
        self._x_scale = 1.0 / frame.size
        self._x_shift = 1.0 - frame.x0 / frame.size
        self._y_shift = 1.0 - frame.y0 / frame.size

    @classmethod
    def build(
        cls,
        codes: Sequence[str],
        geoms: Sequence[BaseGeometry] | ObjArray,
        generation: int = 0,
        *,
        cells_per_grid: float = 64.0,
        max_cells: int = 1 << 25,
    ) -> GridIndex:
        """Build the index for one grid division.

        Parameters
        ----------
        codes : sequence of str
            Grid codes, unique; the lowest (string order) wins shared points.
        geoms : sequence of shapely Polygon or MultiPolygon
            Grid boundaries in EPSG:4326 lon/lat, aligned with ``codes``.
        generation : int, default 0
            The grid generation these boundaries belong to (kept for callers).
        cells_per_grid : float, default 64
            Leaf raster cells per grid: more makes lookups faster and builds slower.
        max_cells : int, default 2**25
            Upper bound on leaf raster cells (4 bytes each).

        Returns
        -------
        GridIndex

        Raises
        ------
        InvalidInputError
            Lengths differ, codes repeat, or a geometry is not a non-empty polygon.
        """
        started = time.perf_counter()
        code_tuple, geom_arr = _validate(codes, geoms)
        shapely.prepare(geom_arr)
        ranks = _ranks(code_tuple)
        segments = _extract_segments(geom_arr)
        valid = shapely.is_valid(geom_arr)
        frame = _choose_frame(geom_arr, cells_per_grid, max_cells)
        raster, constraints = _classify(frame, geom_arr, segments, ranks, valid)
        _warm_prepared(geom_arr)
        return cls(
            code_tuple,
            geom_arr,
            int(generation),
            frame,
            raster,
            constraints,
            segments,
            time.perf_counter() - started,
        )

    def __len__(self) -> int:
        return len(self.codes)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["_geos_lock"]
        del state["_raster_flat"]  # a view of _raster; pickled separately it would be a copy
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._raster_flat = self._raster.ravel()
        self._geos_lock = threading.Lock()
        shapely.prepare(self._geoms)

    def lookup(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> Int32Array:
        """Grid owning each point: ``ST_Covers`` + lowest code wins.

        Parameters
        ----------
        lon, lat : array_like
            EPSG:4326 degrees, broadcast together.

        Returns
        -------
        ndarray of int32
            Index into :attr:`codes` per point (shape of the broadcast input), -1 outside
            every grid or for a non-finite coordinate.
        """
        x, y = np.broadcast_arrays(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        shape = x.shape
        x, y = x.ravel(), y.ravel()
        out = self._raster_values(x, y)
        todo = np.flatnonzero(out < _EMPTY)
        if todo.size:
            cells = -out[todo].astype(np.int64) + _OPEN
            out[todo] = self._resolve_boundary(x[todo], y[todo], cells)
        return out.reshape(shape)

    def lookup_one(self, lon: float, lat: float) -> int:
        """:meth:`lookup` for a single point, without array overhead on interior cells.

        Same answer as ``lookup([lon], [lat])[0]``; only points in boundary cells take
        the array path. This is the hot path of single HTTP lookups.
        """
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return _EMPTY
        frame = self._frame
        fx = min(max(lon * self._x_scale + self._x_shift, 0.0), frame.nx + 1.0)
        fy = min(max(lat * self._x_scale + self._y_shift, 0.0), frame.ny + 1.0)
        value = int(self._raster_flat[int(fy) * (frame.nx + 2) + int(fx)])
        if value >= _EMPTY:
            return value
        return int(self.lookup(np.array([lon]), np.array([lat]))[0])

    def nearest(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike, max_distance_m: float
    ) -> tuple[Int32Array, FloatArray]:
        """Snap points to the nearest grid within ``max_distance_m`` metres.

        A covered point keeps its :meth:`lookup` answer at distance 0. For the others,
        an ``STRtree`` ``dwithin`` query in degrees, with a radius that is a safe upper
        bound of ``max_distance_m`` at the point's latitude (the smaller of metres per
        degree of latitude and of longitude, near the poleward edge of the search
        circle), returns every candidate. Each candidate is then measured in a local
        metric frame centred on the point — longitudes scaled by N(φ)·cos φ, latitudes by
        M(φ), the WGS84 radii of curvature at the point's latitude, relative error
        < 1e-4 within a few kilometres — and the closest one (lowest code on a tie) is
        kept. Its distance is reported as the WGS84 geodesic (``pyproj.Geod``) from the
        point to the closest point found, and compared with ``max_distance_m``. Points
        beyond ±89° latitude are not snapped.

        Parameters
        ----------
        lon, lat : array_like
            EPSG:4326 degrees.
        max_distance_m : float
            Search radius in metres (>= 0).

        Returns
        -------
        index : ndarray of int32
            Grid index per point, -1 when no grid lies within the radius.
        distance_m : ndarray of float64
            0 for covered points, the geodesic distance for snapped ones, NaN for -1.
        """
        if not max_distance_m >= 0:
            raise InvalidInputError(f"max_distance_m must be >= 0, got {max_distance_m!r}")
        x, y = np.broadcast_arrays(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        shape = x.shape
        x, y = x.ravel(), y.ravel()
        idx = self.lookup(x, y)
        dist = np.where(idx >= 0, 0.0, np.nan)
        todo = np.flatnonzero((idx < 0) & np.isfinite(x) & np.isfinite(y) & (np.abs(y) < 89.0))
        if todo.size and len(self.codes):
            near, metres = self._snap(x[todo], y[todo], float(max_distance_m))
            idx[todo], dist[todo] = near, metres
        return idx.reshape(shape), dist.reshape(shape)

    def codes_for(self, idx: npt.ArrayLike) -> list[str | None]:
        """Codes for lookup results.

        Parameters
        ----------
        idx : array_like of int
            Values returned by :meth:`lookup` or :meth:`nearest`.

        Returns
        -------
        list of str or None
            The grid code per entry, ``None`` for -1.
        """
        flat = np.asarray(idx, np.int64).ravel()
        return [self.codes[i] if i >= 0 else None for i in flat.tolist()]

    def stats(self) -> IndexStats:
        """Describe the index: raster size, cell mix, memory and build time.

        Returns
        -------
        IndexStats
        """
        inner = self._raster[1:-1, 1:-1]
        cells = int(inner.size)
        interior = int(np.count_nonzero(inner >= 0))
        empty = int(np.count_nonzero(inner == _EMPTY))
        boundary = cells - interior - empty
        arrays = (self._raster, self._seg_xy, *vars(self._cons).values())
        return IndexStats(
            grids=len(self.codes),
            generation=self.generation,
            cells=cells,
            cell_size_deg=self._frame.size,
            levels=self._frame.depth + 1,
            interior_fraction=interior / cells,
            empty_fraction=empty / cells,
            boundary_fraction=boundary / cells,
            boundary_cells=boundary,
            constraints=int(self._cons.kind.size),
            complex_constraints=int(np.count_nonzero(self._cons.kind == _COMPLEX)),
            segments=self._n_segments,
            build_seconds=self._build_seconds,
            memory_bytes=int(sum(a.nbytes for a in arrays)),
        )

    def _raster_values(self, x: FloatArray, y: FloatArray) -> Int32Array:
        """Raster value per point; NaN/inf and points off the raster land on the -1 rim."""
        frame = self._frame
        fx = x * self._x_scale
        fx += self._x_shift
        np.fmax(fx, 0.0, out=fx)  # fmax/fmin map NaN to the rim too
        np.fmin(fx, frame.nx + 1.0, out=fx)
        fy = y * self._x_scale
        fy += self._y_shift
        np.fmax(fy, 0.0, out=fy)
        np.fmin(fy, frame.ny + 1.0, out=fy)
        flat = fy.astype(np.intp)
        flat *= frame.nx + 2
        flat += fx.astype(np.intp)
        return self._raster.ravel()[flat]

    def _resolve_boundary(self, px: FloatArray, py: FloatArray, cells: IntArray) -> Int32Array:
        """Walk each point's candidates in code order; stop at the first that covers it."""
        cons = self._cons
        out = np.full(px.size, _EMPTY, np.int32)
        todo = np.arange(px.size)
        row = cons.start[cells]
        end = cons.start[cells + 1]
        while todo.size:
            covered = self._covers(row, px, py)
            out[todo[covered]] = cons.grid[row[covered]]
            move = np.flatnonzero(~covered)
            row = row[move] + 1
            more = row < end[move]
            move, row = move[more], row[more]
            full = cons.kind[row] == _FULL
            if full.any():
                out[todo[move[full]]] = cons.grid[row[full]]
                move, row = move[~full], row[~full]
            todo, end, px, py = todo[move], end[move], px[move], py[move]
        return out

    def _covers(self, row: IntArray, px: FloatArray, py: FloatArray) -> BoolArray:
        """Does constraint ``row`` (never FULL here) cover each point?"""
        cons = self._cons
        kind = cons.kind[row]
        seg = np.take(self._seg_xy, cons.seg1[row], axis=0)
        sign, ask = _orient_sign(seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3], px, py)
        covered = sign >= 0
        corner = np.flatnonzero((kind == _AND) | (kind == _OR))
        if corner.size:
            seg = np.take(self._seg_xy, cons.seg2[row[corner]], axis=0)
            sign, unknown = _orient_sign(
                seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3], px[corner], py[corner]
            )
            first, second = covered[corner], sign >= 0
            covered[corner] = np.where(kind[corner] == _AND, first & second, first | second)
            ask[corner] |= unknown
        geos = np.flatnonzero(ask | (kind == _COMPLEX))
        if geos.size:
            with self._geos_lock:
                # For a point, intersects is covers: it includes the boundary.
                covered[geos] = shapely.intersects_xy(
                    self._geoms[cons.grid[row[geos]]], px[geos], py[geos]
                )
        return covered

    def _snap(self, x: FloatArray, y: FloatArray, max_m: float) -> tuple[Int32Array, FloatArray]:
        m_lat, _ = _metres_per_degree(y)
        edge_lat = np.minimum(np.abs(y) + 1.01 * max_m / m_lat, 89.9)
        radius_deg = 1.01 * max_m / np.minimum(m_lat, _metres_per_degree(edge_lat)[1])
        idx = np.full(x.size, _EMPTY, np.int32)
        dist = np.full(x.size, np.nan)
        with self._geos_lock:
            pt, grid = self._tree.query(
                shapely.points(x, y), predicate="dwithin", distance=radius_deg
            )
            if pt.size == 0:
                return idx, dist
            local, scale_x, scale_y = self._local_frames(x[pt], y[pt], grid)
            gap = shapely.distance(local, shapely.points(0.0, 0.0))
            order = np.lexsort((self._ranks[grid], gap, pt))
            best = order[_start_flags(pt[order])]
            ends = shapely.get_coordinates(shapely.shortest_line(local[best], shapely.points(0, 0)))
        near_x = x[pt[best]] + ends[0::2, 0] / scale_x[best]
        near_y = y[pt[best]] + ends[0::2, 1] / scale_y[best]
        metres = np.asarray(_GEOD.inv(x[pt[best]], y[pt[best]], near_x, near_y)[2])
        ok = metres <= max_m
        idx[pt[best][ok]] = grid[best][ok]
        dist[pt[best][ok]] = metres[ok]
        return idx, dist

    def _local_frames(
        self, x: FloatArray, y: FloatArray, grid: IntArray
    ) -> tuple[ObjArray, FloatArray, FloatArray]:
        """Each candidate grid in metres around its query point (equirectangular at φ)."""
        m_lat, m_lon = _metres_per_degree(y)
        geoms = self._geoms[grid]
        per_coord = shapely.get_num_coordinates(geoms)
        ox, oy = np.repeat(x, per_coord), np.repeat(y, per_coord)
        sx, sy = np.repeat(m_lon, per_coord), np.repeat(m_lat, per_coord)

        def to_metres(coords: FloatArray) -> FloatArray:
            return np.column_stack(((coords[:, 0] - ox) * sx, (coords[:, 1] - oy) * sy))

        return shapely.transform(geoms, to_metres), m_lon, m_lat


def _metres_per_degree(lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Metres per degree of latitude and of longitude on the WGS84 ellipsoid."""
    phi = np.radians(lat)
    w = np.sqrt(1.0 - _WGS84_E2 * np.sin(phi) ** 2)
    meridional = _WGS84_A * (1.0 - _WGS84_E2) / w**3
    normal = _WGS84_A / w
    return meridional * math.pi / 180.0, normal * np.cos(phi) * math.pi / 180.0


# --- build ------------------------------------------------------------------------------


def _validate(
    codes: Sequence[str], geoms: Sequence[BaseGeometry] | ObjArray
) -> tuple[tuple[str, ...], ObjArray]:
    code_tuple = tuple(codes)
    geom_list = list(geoms)
    if len(code_tuple) != len(geom_list):
        raise InvalidInputError(f"{len(code_tuple)} codes but {len(geom_list)} geometries")
    if not all(isinstance(code, str) for code in code_tuple):
        raise InvalidInputError("grid codes must be strings")
    repeated = sorted(code for code, count in Counter(code_tuple).items() if count > 1)
    if repeated:
        raise InvalidInputError(f"repeated grid codes: {', '.join(repeated[:5])}")
    geom_arr = np.empty(len(geom_list), dtype=object)
    geom_arr[:] = geom_list
    if geom_arr.size:
        polygonal = np.isin(shapely.get_type_id(geom_arr), (3, 6))
        bad = np.flatnonzero(~polygonal | shapely.is_empty(geom_arr))
        if bad.size:
            named = ", ".join(code_tuple[i] for i in bad[:5])
            raise InvalidInputError(f"grids without a polygon geometry: {named}")
    return code_tuple, geom_arr


def _ranks(codes: tuple[str, ...]) -> IntArray:
    order = sorted(range(len(codes)), key=codes.__getitem__)
    ranks = np.empty(len(codes), np.int64)
    ranks[order] = np.arange(len(codes))
    return ranks


def _extract_segments(geoms: ObjArray) -> _Segments:
    clean = shapely.orient_polygons(shapely.remove_repeated_points(geoms, 0.0))
    parts, part_owner = shapely.get_parts(clean, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    starts = np.flatnonzero(ring_of[1:] == ring_of[:-1])
    xy = np.column_stack((coords[starts], coords[starts + 1]))
    seg_ring = ring_of[starts]
    grid = part_owner[ring_part[seg_ring]].astype(np.int64)
    n = starts.size
    first_of_ring = np.searchsorted(seg_ring, seg_ring, side="left")
    nxt = np.arange(1, n + 1, dtype=np.int64)
    last = np.r_[seg_ring[1:] != seg_ring[:-1], True] if n else np.zeros(0, bool)
    nxt[last] = first_of_ring[last]
    lines = shapely.linestrings(xy.reshape(-1, 2, 2)) if n else np.empty(0, object)
    return _Segments(xy=xy, grid=grid, nxt=nxt, lines=lines)


def _choose_frame(geoms: ObjArray, cells_per_grid: float, max_cells: int) -> _Frame:
    if geoms.size == 0:
        return _Frame(x0=0.0, y0=0.0, size=1.0, nx=2, ny=2, depth=1)
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
    area = max(maxx - minx, 1e-6) * max(maxy - miny, 1e-6)
    size = math.sqrt(area / (geoms.size * max(cells_per_grid, 1.0)))
    size = max(size, math.sqrt(area / max_cells), 1e-6)
    depth = max(1, round(math.log2(math.sqrt(max(cells_per_grid, 1.0)))) + 1)
    block = 1 << depth
    margin = 2.0 * size
    x0, y0 = minx - margin, miny - margin
    nx = math.ceil((maxx + margin - x0) / (size * block)) * block
    ny = math.ceil((maxy + margin - y0) / (size * block)) * block
    return _Frame(x0=x0, y0=y0, size=size, nx=nx, ny=ny, depth=depth)


def _classify(
    frame: _Frame, geoms: ObjArray, segs: _Segments, ranks: IntArray, valid: BoolArray
) -> tuple[Int32Array, _Constraints]:
    """Leaf raster (with a -1 rim) and the boundary-cell constraint table."""
    values, cells = _classify_root(frame, geoms, segs, ranks)
    nxr, nyr = frame.dims(0)
    raster = values.reshape(nyr, nxr)
    for level in range(1, frame.depth + 1):
        cix, ciy, values, cells = _refine(frame, level, cells, geoms, segs)
        raster = np.repeat(np.repeat(raster, 2, axis=0), 2, axis=1)
        raster[ciy, cix] = values
    constraints = _leaf_constraints(frame, cells, segs, valid)
    raster[cells.iy, cells.ix] = _OPEN - np.arange(cells.size, dtype=np.int32)
    rimmed = np.full((frame.ny + 2, frame.nx + 2), _EMPTY, np.int32)
    rimmed[1:-1, 1:-1] = raster
    return rimmed, constraints


def _classify_root(
    frame: _Frame, geoms: ObjArray, segs: _Segments, ranks: IntArray
) -> tuple[Int32Array, _Open]:
    nxr, nyr = frame.dims(0)
    iy, ix = np.divmod(np.arange(nxr * nyr, dtype=np.int64), nxr)
    boxes = shapely.box(*frame.bounds(0, ix, iy))
    seg_cell, seg = STRtree(segs.lines).query(boxes, predicate="intersects")
    order = np.argsort(seg_cell, kind="stable")
    seg_cell, seg = seg_cell[order].astype(np.int64), seg[order].astype(np.int64)
    cand_cell, cand_grid = STRtree(geoms).query(boxes, predicate="intersects")
    order = np.lexsort((ranks[cand_grid], cand_cell))
    cand_cell, cand_grid = cand_cell[order].astype(np.int64), cand_grid[order].astype(np.int64)
    # A grid that meets the box while none of its edges does contains the box.
    full = ~_has_segment(cand_cell, cand_grid, seg_cell, segs.grid[seg], geoms.size)
    return _settle(ix, iy, seg_cell, seg, cand_cell, cand_grid, full, segs, geoms.size)


def _refine(
    frame: _Frame, level: int, parent: _Open, geoms: ObjArray, segs: _Segments
) -> tuple[IntArray, IntArray, Int32Array, _Open]:
    """Split every open cell of ``level - 1`` into four and classify the children.

    Cells are independent, so the work runs in slices of parents to bound memory.
    """
    pieces = [
        _refine_slice(frame, level, parent.slice(lo, hi), geoms, segs)
        for lo, hi in parent.slices(_PAIRS_PER_SLICE)
    ]
    if not pieces:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.int32), _Open.empty()
    cix, ciy, values, cells = zip(*pieces, strict=True)
    return np.concatenate(cix), np.concatenate(ciy), np.concatenate(values), _Open.join(cells)


def _refine_slice(
    frame: _Frame, level: int, parent: _Open, geoms: ObjArray, segs: _Segments
) -> tuple[IntArray, IntArray, Int32Array, _Open]:
    child = np.arange(4 * parent.size, dtype=np.int64)
    p, q = np.divmod(child, 4)
    cix = 2 * parent.ix[p] + (q & 1)
    ciy = 2 * parent.iy[p] + (q >> 1)
    src, seg_cell = _expand4(parent.seg_cell)
    seg = parent.seg[src]
    meets = _segments_meet_boxes(frame, level, cix[seg_cell], ciy[seg_cell], seg, segs)
    seg_cell, seg = seg_cell[meets], seg[meets]
    src, cand_cell = _expand4(parent.cand_cell)
    cand_grid, full = parent.cand_grid[src], parent.cand_full[src]
    crossed = _has_segment(cand_cell, cand_grid, seg_cell, segs.grid[seg], geoms.size)
    # No edge of the grid meets the child box: the box is all in or all out of it.
    check = np.flatnonzero(~full & ~crossed)
    if check.size:
        cx, cy = frame.centres(level, cix[cand_cell[check]], ciy[cand_cell[check]])
        full[check] = shapely.contains_xy(geoms[cand_grid[check]], cx, cy)
    keep = full | crossed
    values, cells = _settle(
        cix, ciy, seg_cell, seg, cand_cell[keep], cand_grid[keep], full[keep], segs, geoms.size
    )
    return cix, ciy, values, cells


def _segments_meet_boxes(
    frame: _Frame, level: int, ix: IntArray, iy: IntArray, seg: IntArray, segs: _Segments
) -> BoolArray:
    """Exact segment/closed-box intersection: float comparisons, else GEOS."""
    xmin, ymin, xmax, ymax = frame.bounds(level, ix, iy)
    xy = segs.xy[seg]
    ax, ay, bx, by = xy[:, 0], xy[:, 1], xy[:, 2], xy[:, 3]
    overlap = (np.maximum(ax, bx) >= xmin) & (np.minimum(ax, bx) <= xmax)
    overlap &= (np.maximum(ay, by) >= ymin) & (np.minimum(ay, by) <= ymax)
    a_in = (ax >= xmin) & (ax <= xmax) & (ay >= ymin) & (ay <= ymax)
    b_in = (bx >= xmin) & (bx <= xmax) & (by >= ymin) & (by <= ymax)
    # An axis-parallel segment is its own envelope.
    sure = overlap & (a_in | b_in | (ax == bx) | (ay == by))
    ask = np.flatnonzero(overlap & ~sure)
    if ask.size:
        # Pairs arrive grouped by cell: one box per run of equal cells.
        first = _start_flags(ix[ask]) | _start_flags(iy[ask])
        box_of = np.cumsum(first) - 1
        at = ask[first]
        boxes = shapely.box(xmin[at], ymin[at], xmax[at], ymax[at])
        sure[ask] = shapely.intersects(segs.lines[seg[ask]], boxes[box_of])
    return sure


def _settle(
    ix: IntArray,
    iy: IntArray,
    seg_cell: IntArray,
    seg: IntArray,
    cand_cell: IntArray,
    cand_grid: IntArray,
    cand_full: BoolArray,
    segs: _Segments,
    n_grids: int,
) -> tuple[Int32Array, _Open]:
    """Per-cell raster value (grid, -1 or open) and the open cells' remaining pairs."""
    values = np.full(ix.size, _EMPTY, np.int32)
    starts = _group_starts(cand_cell)
    first = cand_cell[starts]
    values[first] = np.where(cand_full[starts], cand_grid[starts], _OPEN)
    group = np.cumsum(_start_flags(cand_cell)) - 1
    position = np.arange(cand_cell.size)
    big = np.iinfo(np.int64).max
    first_full = (
        np.minimum.reduceat(np.where(cand_full, position, big), starts) if starts.size else starts
    )
    # Candidates after the first one covering the whole cell can never win there.
    keep = (values[cand_cell] == _OPEN) & (position <= first_full[group])
    open_cells = np.flatnonzero(values == _OPEN)
    renumber = np.full(ix.size, -1, np.int64)
    renumber[open_cells] = np.arange(open_cells.size)
    seg_keep = values[seg_cell] == _OPEN
    kept_cell, kept_grid = cand_cell[keep], cand_grid[keep]
    if np.count_nonzero(keep) < np.count_nonzero(values[cand_cell] == _OPEN):
        seg_keep[seg_keep] = _has_segment(
            seg_cell[seg_keep], segs.grid[seg[seg_keep]], kept_cell, kept_grid, n_grids
        )
    cells = _Open(
        ix=ix[open_cells],
        iy=iy[open_cells],
        seg_cell=renumber[seg_cell[seg_keep]],
        seg=seg[seg_keep],
        cand_cell=renumber[kept_cell],
        cand_grid=kept_grid,
        cand_full=cand_full[keep],
    )
    return values, cells


def _leaf_constraints(
    frame: _Frame, cells: _Open, segs: _Segments, valid: BoolArray
) -> _Constraints:
    """Local model (FULL/HALF/AND/OR/COMPLEX) of every candidate in every open leaf."""
    parts = [
        _leaf_slice(frame, cells.slice(lo, hi), segs, valid)
        for lo, hi in cells.slices(_PAIRS_PER_SLICE)
    ]
    counts = [np.diff(part.start) for part in parts]
    start = np.r_[0, np.cumsum(np.concatenate(counts))] if parts else np.zeros(1, np.int64)
    return _Constraints(
        start=start.astype(np.int64),
        kind=np.concatenate([p.kind for p in parts]) if parts else np.zeros(0, np.int8),
        grid=np.concatenate([p.grid for p in parts]) if parts else np.zeros(0, np.int32),
        seg1=np.concatenate([p.seg1 for p in parts]) if parts else np.zeros(0, np.int64),
        seg2=np.concatenate([p.seg2 for p in parts]) if parts else np.zeros(0, np.int64),
    )


def _leaf_slice(frame: _Frame, cells: _Open, segs: _Segments, valid: BoolArray) -> _Constraints:
    n_grids = valid.size
    seg_key = cells.seg_cell * n_grids + segs.grid[cells.seg]
    order = np.argsort(seg_key, kind="stable")
    seg_key, seg = seg_key[order], cells.seg[order]
    seg_cell = cells.seg_cell[order]
    xmin, ymin, xmax, ymax = frame.bounds(frame.depth, cells.ix[seg_cell], cells.iy[seg_cell])
    ax, ay = segs.xy[seg, 0], segs.xy[seg, 1]
    starts_inside = (ax >= xmin) & (ax <= xmax) & (ay >= ymin) & (ay <= ymax)
    cand_key = cells.cand_cell * n_grids + cells.cand_grid
    lo = np.searchsorted(seg_key, cand_key, side="left")
    hi = np.searchsorted(seg_key, cand_key, side="right")
    n_seg = hi - lo
    vertex_total = np.r_[0, np.cumsum(starts_inside)]
    n_vertex = vertex_total[hi] - vertex_total[lo]
    simple = ~cells.cand_full & valid[cells.cand_grid]
    kind = np.where(cells.cand_full, _FULL, _COMPLEX).astype(np.int8)
    seg1 = np.zeros(cand_key.size, np.int64)
    half = simple & (n_seg == 1) & (n_vertex == 0)
    kind[half] = _HALF
    seg1[half] = seg[lo[half]]
    seg2 = seg1.copy()
    corner = np.flatnonzero(simple & (n_seg == 2) & (n_vertex <= 1))
    if corner.size:
        s_a, s_b = seg[lo[corner]], seg[lo[corner] + 1]
        a_first = segs.nxt[s_a] == s_b
        s_in, s_out = np.where(a_first, s_a, s_b), np.where(a_first, s_b, s_a)
        u_inside = np.where(a_first, starts_inside[lo[corner]], starts_inside[lo[corner] + 1])
        kind[corner] = np.where(u_inside, _COMPLEX, _corner_kind(s_in, s_out, segs))
        seg1[corner], seg2[corner] = s_in, s_out
    start = np.searchsorted(cells.cand_cell, np.arange(cells.size + 1))
    _complete_shared_edges(kind, seg1, start, segs)
    return _Constraints(
        start=start.astype(np.int64),
        kind=kind,
        grid=cells.cand_grid.astype(np.int32),
        seg1=seg1,
        seg2=seg2,
    )


def _complete_shared_edges(
    kind: npt.NDArray[np.int8], seg1: IntArray, start: IntArray, segs: _Segments
) -> None:
    """A HALF that follows a HALF on the same edge reversed becomes FULL.

    It is only reached when the point is strictly right of the first edge, which is
    strictly left of the reversed one (two grids sharing an edge exactly).
    """
    pair = np.flatnonzero((kind[:-1] == _HALF) & (kind[1:] == _HALF))
    pair = pair[~np.isin(pair + 1, start)]  # both rows in the same cell
    first, second = segs.xy[seg1[pair]], segs.xy[seg1[pair + 1]]
    reversed_edge = np.all(second == first[:, [2, 3, 0, 1]], axis=1)
    kind[pair[reversed_edge] + 1] = _FULL


def _corner_kind(s_in: IntArray, s_out: IntArray, segs: _Segments) -> npt.NDArray[np.int8]:
    """AND for a convex corner u→v→w, OR for a reflex one, HALF for a straight one."""
    u, v, w = segs.xy[s_in, :2], segs.xy[s_in, 2:], segs.xy[s_out, 2:]
    turn, unknown = _orient_sign(u[:, 0], u[:, 1], v[:, 0], v[:, 1], w[:, 0], w[:, 1])
    ahead = np.einsum("ij,ij->i", v - u, w - v) > 0
    kind = np.full(s_in.size, _COMPLEX, np.int8)
    kind[turn > 0] = _AND
    kind[turn < 0] = _OR
    kind[(turn == 0) & ahead] = _HALF
    kind[(segs.nxt[s_in] != s_out) | unknown] = _COMPLEX
    return kind


def _has_segment(
    cand_cell: IntArray, cand_grid: IntArray, seg_cell: IntArray, seg_grid: IntArray, n: int
) -> BoolArray:
    """Whether each (cell, grid) pair appears among the (cell, segment-owner) pairs."""
    if seg_cell.size == 0 or cand_cell.size == 0:
        return np.zeros(cand_cell.size, bool)
    known = np.sort(seg_cell * n + seg_grid)
    wanted = cand_cell * n + cand_grid
    at = np.minimum(np.searchsorted(known, wanted), known.size - 1)
    return known[at] == wanted


def _expand4(cell: IntArray) -> tuple[IntArray, IntArray]:
    """Pairs grouped by parent cell → (source pair, child cell 4p+q), grouped by child."""
    n = cell.size
    starts = _group_starts(cell)
    lengths = np.diff(np.r_[starts, n])
    group = np.repeat(np.arange(starts.size), lengths)
    offset = np.arange(n) - starts[group]
    src = np.empty(4 * n, np.int64)
    child = np.empty(4 * n, np.int64)
    for q in range(4):
        dest = 4 * starts[group] + q * lengths[group] + offset
        src[dest] = np.arange(n)
        child[dest] = 4 * cell + q
    return src, child


def _start_flags(cell: IntArray) -> BoolArray:
    flags = np.ones(cell.size, bool)
    flags[1:] = cell[1:] != cell[:-1]
    return flags


def _group_starts(cell: IntArray) -> IntArray:
    return np.flatnonzero(_start_flags(cell))


def _warm_prepared(geoms: ObjArray) -> None:
    """Build GEOS's lazy point-in-area indexes now, while single-threaded."""
    if geoms.size:
        ring = shapely.get_exterior_ring(shapely.get_geometry(geoms, 0))
        anchor = shapely.get_point(ring, 0)
        shapely.intersects_xy(geoms, shapely.get_x(anchor), shapely.get_y(anchor))


# --- exact orientation ------------------------------------------------------------------


def _orient_sign(
    ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray, px: FloatArray, py: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Sign of orient2d(a, b, p): +1 when p is left of a→b, 0 on the line.

    Returns the exact sign, plus a mask of points it could not certify (a coordinate
    difference that is not itself a double); the caller must ask GEOS for those.
    """
    detleft = (ax - px) * (by - py)
    detright = (ay - py) * (bx - px)
    det = detleft - detright
    sign = np.sign(det)
    unsure = np.abs(det) <= _CCW_ERRBOUND * (np.abs(detleft) + np.abs(detright))
    unknown = np.zeros(det.shape, bool)
    if unsure.any():
        i = np.flatnonzero(unsure)
        sign[i], unknown[i] = _exact_orient_sign(ax[i], ay[i], bx[i], by[i], px[i], py[i])
    return sign, unknown


def _exact_orient_sign(
    ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray, px: FloatArray, py: FloatArray
) -> tuple[FloatArray, BoolArray]:
    adx, t1 = _two_diff(ax, px)
    bdy, t2 = _two_diff(by, py)
    ady, t3 = _two_diff(ay, py)
    bdx, t4 = _two_diff(bx, px)
    unknown = (t1 != 0) | (t2 != 0) | (t3 != 0) | (t4 != 0)
    left_hi, left_lo = _two_product(adx, bdy)
    right_hi, right_lo = _two_product(ady, bdx)
    parts = np.stack(_two_two_diff(left_hi, left_lo, right_hi, right_lo))
    # Non-overlapping expansion: the largest component carries the sign of the sum.
    largest = np.argmax(np.abs(parts), axis=0)
    return np.sign(parts[largest, np.arange(parts.shape[1])]), unknown


def _two_sum(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = a + b
    b_virtual = x - a
    a_virtual = x - b_virtual
    return x, (a - a_virtual) + (b - b_virtual)


def _two_diff(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = a - b
    b_virtual = a - x
    a_virtual = x + b_virtual
    return x, (a - a_virtual) + (b_virtual - b)


def _split(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    err = x - a_hi * b_hi
    err -= a_lo * b_hi
    err -= a_hi * b_lo
    return x, a_lo * b_lo - err


def _two_two_diff(
    a1: FloatArray, a0: FloatArray, b1: FloatArray, b0: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(a1 + a0) - (b1 + b0) as a four-term expansion (Shewchuk's Two_Two_Diff)."""
    i, x0 = _two_diff(a0, b0)
    j, k = _two_sum(a1, i)
    i, x1 = _two_diff(k, b1)
    x3, x2 = _two_sum(j, i)
    return x3, x2, x1, x0
