"""Things placed into grids: building footprints and facility (component, 部件) points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from gridmap.catalog import CATEGORIES
from sample_data._divisions import COS_LAT, PRECISION, FloatArray, GeomArray, IntArray
from sample_data._names import ROAD_SUFFIXES

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * COS_LAT
BUILDING_USES = ("residential", "commercial", "public", "industrial")
_USE_P = (0.75, 0.12, 0.06, 0.07)
_MAX_ROUNDS = 80
_SHRINK_AFTER = 12  # rounds at full size before footprints start to shrink
# Relative frequency of each catalog class (manhole covers, lamps, bins and trees abound).
_CATEGORY_WEIGHTS = {
    ("01", "01"): 8, ("01", "02"): 8, ("01", "03"): 8, ("01", "04"): 4, ("01", "05"): 4,
    ("01", "06"): 4, ("01", "07"): 3, ("01", "08"): 6, ("01", "09"): 2, ("02", "01"): 10,
    ("02", "02"): 2, ("02", "03"): 4, ("02", "04"): 2, ("02", "05"): 3, ("02", "06"): 4,
    ("03", "01"): 8, ("03", "02"): 1, ("03", "03"): 1, ("03", "04"): 2, ("04", "01"): 8,
    ("04", "02"): 2, ("04", "03"): 2, ("05", "01"): 0.3, ("05", "02"): 0.3,
    ("06", "01"): 3, ("06", "02"): 0.3,
}  # fmt: skip
_FACILITY_STATES = ("intact", "damaged", "lost", "removed")
_STATE_P = (0.94, 0.035, 0.015, 0.01)


def rectangles(
    cx: FloatArray, cy: FloatArray, width: FloatArray, depth: FloatArray, angle: FloatArray
) -> GeomArray:
    """Rotated rectangles (sizes in metres) around lon/lat centres, snapped to PRECISION."""
    ux = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    uy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    lx, ly = ux * width[:, None], uy * depth[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = cx[:, None] + (lx * cos - ly * sin) / M_PER_DEG_LON
    y = cy[:, None] + (lx * sin + ly * cos) / M_PER_DEG_LAT
    coords = np.round(np.stack([x, y], axis=-1) / PRECISION) * PRECISION
    return shapely.polygons(coords)


def _uniform_in_bounds(
    rng: np.random.Generator, bounds: FloatArray
) -> tuple[FloatArray, FloatArray]:
    return rng.uniform(bounds[:, 0], bounds[:, 2]), rng.uniform(bounds[:, 1], bounds[:, 3])


def _clashing(candidates: GeomArray, placed: GeomArray) -> NDArray[np.bool_]:
    """Candidates that intersect an already placed footprint or an earlier candidate."""
    clash = np.zeros(len(candidates), dtype=bool)
    if len(placed):
        hit, _ = shapely.STRtree(placed).query(candidates, predicate="intersects")
        clash[hit] = True
    i, j = shapely.STRtree(candidates).query(candidates, predicate="intersects")
    clash[np.maximum(i, j)[i != j]] = True
    return clash


def place_footprints(
    rng: np.random.Generator, grids: GeomArray, owner: IntArray
) -> NDArray[np.object_]:
    """One non-overlapping rotated rectangle (10–40 m) strictly inside ``grids[owner[i]]``.

    Rejection sampling in rounds; footprints that keep failing (small grids) shrink a
    little every round. Returns ``None`` where nothing fitted.
    """
    n = len(owner)
    width, depth = rng.uniform(12.0, 40.0, n), rng.uniform(10.0, 25.0, n)
    angle = rng.uniform(0.0, np.pi, n)
    bounds = shapely.bounds(grids)
    shapely.prepare(grids)
    placed = np.full(n, None, dtype=object)
    pending = np.arange(n)
    for round_no in range(_MAX_ROUNDS):
        shrink = 0.8 ** max(0, round_no - _SHRINK_AFTER)
        cx, cy = _uniform_in_bounds(rng, bounds[owner[pending]])
        cand = rectangles(cx, cy, width[pending] * shrink, depth[pending] * shrink, angle[pending])
        ok = shapely.contains_properly(grids[owner[pending]], cand)
        neighbours = ~shapely.is_missing(placed) & np.isin(owner, owner[pending[ok]])
        ok[np.flatnonzero(ok)[_clashing(cand[ok], placed[neighbours])]] = False
        placed[pending[ok]] = cand[ok]
        pending = pending[~ok]
        if pending.size == 0:
            break
    return placed


def make_buildings(
    rng: np.random.Generator,
    grids: pd.DataFrame,
    communities: pd.DataFrame,
    address_prefix: pd.Series,
) -> pd.DataFrame:
    """About three buildings per grid (at least one), with code, address, floors and use.

    ``grids`` has ``code``, ``parent_code`` and ``geometry``; ``communities`` has ``code``
    and ``name``; ``address_prefix`` maps a community code to 重庆市<district><street>.
    """
    per_grid = rng.integers(1, 6, len(grids))
    owner = np.repeat(np.arange(len(grids)), per_grid)
    geoms = place_footprints(rng, grids.geometry.to_numpy(), owner)
    keep = ~shapely.is_missing(geoms)
    owner, geoms = owner[keep], geoms[keep]
    missing = np.setdiff1d(np.arange(len(grids)), owner)
    if missing.size:
        raise RuntimeError(f"no building fits into grid(s) {grids.code.iloc[missing].tolist()}")
    return _building_attributes(rng, grids, communities, address_prefix, owner, geoms)


def _building_attributes(
    rng: np.random.Generator,
    grids: pd.DataFrame,
    communities: pd.DataFrame,
    address_prefix: pd.Series,
    owner: IntArray,
    geoms: GeomArray,
) -> pd.DataFrame:
    n = len(owner)
    grid_code = grids.code.to_numpy()[owner]
    community = grids.parent_code.to_numpy()[owner]
    seq_in_grid = pd.Series(owner).groupby(owner).cumcount().to_numpy() + 1
    number = pd.Series(community).groupby(community).cumcount().to_numpy() + 1
    use = np.asarray(BUILDING_USES)[rng.choice(len(BUILDING_USES), n, p=_USE_P)]
    address = (
        address_prefix.loc[community].to_numpy()
        + _road_names(rng, communities).loc[community].to_numpy()
        + pd.Series(number).astype(str).to_numpy()
        + "号"
    )
    return pd.DataFrame(
        {
            "code": grid_code + pd.Series(seq_in_grid).astype(str).str.zfill(3).to_numpy(),
            "address": address,
            "floors": _floors(rng, use),
            "use": use,
            "grid_code": grid_code,
            "geometry": geoms,
        }
    )


def _road_names(rng: np.random.Generator, communities: pd.DataFrame) -> pd.Series:
    base = communities.name.str.replace(r"(社区|村)$", "", regex=True)
    suffix = np.asarray(ROAD_SUFFIXES)[rng.integers(0, len(ROAD_SUFFIXES), len(communities))]
    return pd.Series((base + suffix).to_numpy(), index=communities.code.to_numpy())


def _floors(rng: np.random.Generator, use: NDArray[np.str_]) -> IntArray:
    n = len(use)
    tower = rng.random(n)
    residential = np.where(
        tower < 0.4,
        rng.integers(2, 8, n),
        np.where(tower < 0.75, rng.integers(8, 19, n), rng.integers(19, 34, n)),
    )
    by_use = {
        "residential": residential,
        "commercial": np.where(tower < 0.7, rng.integers(1, 6, n), rng.integers(6, 41, n)),
        "public": rng.integers(1, 7, n),
        "industrial": rng.integers(1, 4, n),
    }
    return np.select([use == u for u in BUILDING_USES], [by_use[u] for u in BUILDING_USES])


def make_facilities(rng: np.random.Generator, grids: pd.DataFrame) -> pd.DataFrame:
    """A few facilities per grid: class, 16-digit code, state, departments, a point inside."""
    per_grid = 1 + rng.poisson(2.0, len(grids))
    owner = np.repeat(np.arange(len(grids)), per_grid)
    weights = np.array([_CATEGORY_WEIGHTS[(c.major_code, c.minor_code)] for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), len(owner), p=weights / weights.sum())
    points = _points_inside(rng, grids.geometry.to_numpy(), owner)
    grid_code = grids.code.to_numpy()[owner]
    cats = pd.DataFrame(CATEGORIES).iloc[category].reset_index(drop=True)
    district = np.array([c[:6] for c in grid_code], dtype=object)
    klass = district + cats.major_code.to_numpy() + cats.minor_code.to_numpy()
    seq = pd.Series(klass).groupby(klass).cumcount().to_numpy() + 1
    state = rng.choice(len(_FACILITY_STATES), len(owner), p=_STATE_P)
    return pd.DataFrame(
        {
            "code": klass + pd.Series(seq).astype(str).str.zfill(6).to_numpy(),
            "major_code": cats.major_code.to_numpy(),
            "minor_code": cats.minor_code.to_numpy(),
            "name": cats.name.to_numpy() + pd.Series(seq).astype(str).to_numpy() + "号",
            "state": np.asarray(_FACILITY_STATES, dtype=object)[state],
            "grid_code": grid_code,
            "owner_department_code": cats.owner.to_numpy(),
            "maintainer_department_code": cats.maintainer.to_numpy(),
            "geometry": points,
        }
    )


def _points_inside(rng: np.random.Generator, grids: GeomArray, owner: IntArray) -> GeomArray:
    """A uniformly random point in the interior of ``grids[owner[i]]`` for every ``i``."""
    bounds = shapely.bounds(grids)
    shapely.prepare(grids)
    x, y = np.empty(len(owner)), np.empty(len(owner))
    pending = np.arange(len(owner))
    for _ in range(_MAX_ROUNDS):
        px, py = _uniform_in_bounds(rng, bounds[owner[pending]])
        px, py = np.round(px / PRECISION) * PRECISION, np.round(py / PRECISION) * PRECISION
        ok = shapely.contains_xy(grids[owner[pending]], px, py)
        x[pending[ok]], y[pending[ok]] = px[ok], py[ok]
        pending = pending[~ok]
        if pending.size == 0:
            return shapely.points(x, y)
    raise RuntimeError("could not place facility points inside their grids")
