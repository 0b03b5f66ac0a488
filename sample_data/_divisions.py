"""The synthetic division: city outline, grid cells, nested groups, codes and names.

Built bottom-up so that coverage and containment hold by construction: grids are a
Voronoi tessellation clipped to the outline and snapped to a common precision grid;
every parent is the coverage union of its children.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from shapely import Polygon

from sample_data._names import DISTRICT_PRIORITY, DISTRICTS, PLACE_FIRST, PLACE_SECOND

EXTENT = (106.2, 29.2, 107.0, 29.9)
"""Fixed bounding box of the city (lon/lat): more grids means denser, not larger."""
PRECISION = 1e-7
"""Coordinate grid (degrees, about 1 cm) all area vertices are snapped to."""
CITY_CODE = "500000"
CITY_NAME = "重庆市"
CORE = (106.56, 29.56)  # Yuzhong peninsula
COS_LAT = math.cos(math.radians(29.55))
CHONGQING = {"district": 38, "street": 1031, "community": 11000, "grid": 65000}
_SEED_LATTICE = 1e-4  # seeds at least ~10 m apart: no grid is thinner than a building

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
GeomArray = NDArray[np.object_]
_NO_PARENT: IntArray = np.zeros(0, dtype=np.int64)  # set once the level above is built


@dataclass
class Level:
    """One level of the division: geometry, parent index and interior point per area."""

    geoms: GeomArray
    parent: IntArray
    points: FloatArray
    codes: NDArray[np.str_] | None = None
    names: NDArray[np.str_] | None = None


def level_counts(grids: int) -> dict[str, int]:
    """Number of areas per level for ``grids`` grids, in Chongqing's proportions.

    Parameters
    ----------
    grids : int
        Number of grids (65,000 is Chongqing's real count).

    Returns
    -------
    dict[str, int]
        Counts for ``district``, ``street``, ``community`` and ``grid``; every parent
        level has at least one area and never more than the level below.
    """
    if grids < 1:
        raise ValueError(f"grids must be at least 1, got {grids}")
    scale = grids / CHONGQING["grid"]
    districts = min(len(DISTRICTS), max(1, round(CHONGQING["district"] * scale)))
    streets = min(grids, max(districts, round(CHONGQING["street"] * scale)))
    communities = min(grids, max(streets, round(CHONGQING["community"] * scale)))
    return {"district": districts, "street": streets, "community": communities, "grid": grids}


def city_outline(rng: np.random.Generator) -> Polygon:
    """An irregular star-shaped outline filling :data:`EXTENT`, snapped to :data:`PRECISION`."""
    theta = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 8):
        amplitude = rng.uniform(0.03, 0.09) / (k - 1) ** 0.6
        radius += amplitude * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
    x, y = np.cos(theta) * radius, np.sin(theta) * radius
    minx, miny, maxx, maxy = EXTENT
    x = minx + (x - x.min()) / np.ptp(x) * (maxx - minx)
    y = miny + (y - y.min()) / np.ptp(y) * (maxy - miny)
    outline = shapely.set_precision(Polygon(np.column_stack([x, y])), PRECISION)
    assert isinstance(outline, Polygon) and outline.is_valid
    return outline


def grid_seeds(rng: np.random.Generator, outline: Polygon, n: int) -> FloatArray:
    """``n`` distinct points inside ``outline``, densest around the core.

    A mixture of a dense core, a few sub-centres and a uniform background. At most one
    seed per ~10 m lattice cell, jittered inside it: no two seeds nearly coincide (no
    sliver grids), and no four are co-circular (no degenerate Voronoi vertices).
    """
    minx, miny, maxx, maxy = EXTENT
    centres = rng.uniform((minx + 0.15, miny + 0.12), (maxx - 0.15, maxy - 0.12), (5, 2))
    shapely.prepare(outline)
    keys = np.empty((0, 2), dtype=np.int64)
    seeds = np.empty((0, 2), dtype=np.float64)
    while len(seeds) < n:
        m = max(2 * (n - len(seeds)), 64)
        kind = rng.random(m)[:, None]
        core = rng.normal(CORE, (0.07, 0.06), (m, 2))
        sub = centres[rng.integers(0, len(centres), m)] + rng.normal(0.0, 0.025, (m, 2))
        background = rng.uniform((minx, miny), (maxx, maxy), (m, 2))
        pts = np.where(kind < 0.4, core, np.where(kind < 0.6, sub, background))
        lattice = np.round(pts / _SEED_LATTICE).astype(np.int64)
        jittered = (lattice + rng.uniform(-0.25, 0.25, (m, 2))) * _SEED_LATTICE
        inside = shapely.contains_xy(outline, jittered[:, 0], jittered[:, 1])
        keys = np.concatenate([keys, lattice[inside]])
        seeds = np.concatenate([seeds, jittered[inside]])
        _, first = np.unique(keys, axis=0, return_index=True)
        first = np.sort(first)
        keys, seeds = keys[first], seeds[first]
    return seeds[:n]


def grid_cells(seeds: FloatArray, outline: Polygon) -> GeomArray:
    """Voronoi cells of ``seeds`` clipped to ``outline``, snapped, one polygon each."""
    vor = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=outline, ordered=True)
    cells = shapely.set_precision(shapely.get_parts(vor), PRECISION)
    shapely.prepare(outline)
    edge = ~shapely.contains_properly(outline, cells)
    cells[edge] = shapely.intersection(cells[edge], outline, grid_size=PRECISION)
    return _largest_part(cells)


def _largest_part(geoms: GeomArray) -> GeomArray:
    """Keep only the largest polygon of cells the clip left multi-part (or as a collection).

    A concave outline can cut a Voronoi cell in two; the lost piece just makes a small
    notch in the city, which is the union of the grids anyway.
    """
    multi = np.flatnonzero(shapely.get_type_id(geoms) != 3)
    for i in multi:
        parts = shapely.get_parts(geoms[i])
        parts = parts[shapely.get_type_id(parts) == 3]
        geoms[i] = parts[np.argmax(shapely.area(parts))]
    return geoms


def edge_adjacency(polygons: GeomArray) -> tuple[IntArray, IntArray]:
    """Pairs ``(a, b)``, ``a < b``, of polygons sharing at least one edge.

    In a valid coverage shared edges have identical vertices in both polygons, so
    matching edges by their snapped endpoints is exact (and much faster than pairwise
    ``relate`` tests).
    """
    rings = shapely.get_exterior_ring(polygons)
    coords, owner = shapely.get_coordinates(rings, return_index=True)
    snapped = np.round(coords / PRECISION).astype(np.int64)
    key = (snapped[:, 0] << 32) + snapped[:, 1]  # both below 2**31 inside EXTENT
    _, vertex = np.unique(key, return_inverse=True)
    vertex = vertex.astype(np.int64)
    same = owner[:-1] == owner[1:]
    v1, v2 = vertex[:-1][same], vertex[1:][same]
    edge_key = np.minimum(v1, v2) * (vertex.max() + 1) + np.maximum(v1, v2)
    edge_owner = owner[:-1][same]
    order = np.argsort(edge_key, kind="stable")
    edge_key, edge_owner = edge_key[order], edge_owner[order]
    shared = np.flatnonzero(edge_key[:-1] == edge_key[1:])
    a, b = edge_owner[shared], edge_owner[shared + 1]
    pairs = np.unique(np.column_stack([np.minimum(a, b), np.maximum(a, b)]), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def components(n: int, a: IntArray, b: IntArray) -> IntArray:
    """Connected-component label (smallest member index) of each of ``n`` nodes.

    Hook-and-compress union-find on numpy arrays; written by hand because SciPy's
    ``connected_components`` is not a dependency.
    """
    label = np.arange(n, dtype=np.int64)
    while True:
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            return label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def group(
    points: FloatArray,
    n_groups: int,
    rng: np.random.Generator,
    adjacency: tuple[IntArray, IntArray],
) -> IntArray:
    """Group children into ``n_groups`` contiguous parents: nearest of random seed children.

    Every group keeps its seed child, so no group is empty; children cut off from their
    group's main piece move to a neighbouring group until every group is contiguous.
    """
    seeds = np.sort(rng.choice(len(points), n_groups, replace=False))
    scaled = points * (COS_LAT, 1.0)
    tree = shapely.STRtree(shapely.points(scaled[seeds]))
    idx = tree.query_nearest(shapely.points(scaled), all_matches=False)
    labels = np.empty(len(points), dtype=np.int64)
    labels[idx[0]] = idx[1]
    labels[seeds] = np.arange(n_groups)
    return _make_contiguous(labels, seeds, adjacency)


def _make_contiguous(
    labels: IntArray, seeds: IntArray, adjacency: tuple[IntArray, IntArray]
) -> IntArray:
    """Move pieces cut off from their group's seed into a neighbouring group."""
    a, b = adjacency
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    for _ in range(len(labels)):
        inner = labels[a] == labels[b]
        comp = components(len(labels), a[inner], b[inner])
        stray = comp != comp[seeds][labels]
        # A stray piece joins the lowest-numbered group among its *settled* neighbours:
        # two stray pieces never swap back and forth, and every round settles some.
        edge = stray[src] & ~stray[dst]
        if not edge.any():
            break  # all settled (or only islands without settled neighbours are left)
        piece, target = comp[src[edge]], labels[dst[edge]]
        order = np.lexsort((target, piece))
        piece, target = piece[order], target[order]
        first = np.r_[True, piece[1:] != piece[:-1]]
        new_group = np.full(len(labels), -1, dtype=np.int64)
        new_group[piece[first]] = target[first]
        moving = stray & (new_group[comp] >= 0)
        labels[moving] = new_group[comp[moving]]
    return labels


def dissolve(geoms: GeomArray, labels: IntArray, n_groups: int) -> GeomArray:
    """Coverage union of the members of each group, as MultiPolygons."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_groups + 1))
    out = np.empty(n_groups, dtype=object)
    for g in range(n_groups):
        out[g] = shapely.coverage_union_all(geoms[order[bounds[g] : bounds[g + 1]]])
    return as_multipolygons(out)


def as_multipolygons(geoms: GeomArray) -> GeomArray:
    """Wrap single polygons so that every geometry is a MultiPolygon."""
    geoms = np.asarray(geoms, dtype=object).copy()
    single = np.flatnonzero(shapely.get_type_id(geoms) == 3)
    if single.size:
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.size))
    return geoms


def parent_adjacency(
    labels: IntArray, adjacency: tuple[IntArray, IntArray]
) -> tuple[IntArray, IntArray]:
    """Adjacency of groups implied by the adjacency of their members."""
    a, b = labels[adjacency[0]], labels[adjacency[1]]
    keep = a != b
    pairs = np.unique(np.column_stack([np.minimum(a, b), np.maximum(a, b)])[keep], axis=0)
    return pairs[:, 0], pairs[:, 1]


def reading_order(points: FloatArray, parent: IntArray, parent_bounds: FloatArray) -> IntArray:
    """1-based sequence of each child inside its parent: rows north→south, west→east in a row.

    A parent of ``k`` children with a bounding box ``w`` × ``h`` (ground distance) is cut
    into ``round(sqrt(k·h/w))`` horizontal bands of equal height; children are numbered
    band by band from the north, west to east inside a band, by their interior point.

    Parameters
    ----------
    points : (n, 2) float array
        Interior point (lon, lat) of each child.
    parent : (n,) int array
        Index of each child's parent into ``parent_bounds``.
    parent_bounds : (m, 4) float array
        ``minx, miny, maxx, maxy`` of each parent.

    Returns
    -------
    (n,) int array
        Sequence numbers starting at 1 within every parent.
    """
    k = np.bincount(parent, minlength=len(parent_bounds))[parent]
    minx, miny, maxx, maxy = np.asarray(parent_bounds, dtype=float)[parent].T
    width = np.maximum((maxx - minx) * COS_LAT, 1e-12)
    height = np.maximum(maxy - miny, 1e-12)
    rows = np.maximum(1, np.round(np.sqrt(k * height / width))).astype(np.int64)
    band = np.floor((maxy - points[:, 1]) / height * rows).astype(np.int64)
    band = np.clip(band, 0, rows - 1)
    order = np.lexsort((points[:, 0], band, parent))
    seq = np.empty(len(parent), dtype=np.int64)
    first = np.searchsorted(parent[order], parent[order], side="left")
    seq[order] = np.arange(len(order)) - first + 1
    return seq


def interior_points(geoms: GeomArray) -> FloatArray:
    """A point guaranteed inside each geometry (``point_on_surface``) as an (n, 2) array."""
    return shapely.get_coordinates(shapely.point_on_surface(geoms))


def place_names(rng: np.random.Generator, parent: IntArray) -> NDArray[np.str_]:
    """Two-character place names (龙溪, 石坪…), unique among the children of one parent."""
    pool = np.array([a + b for a in PLACE_FIRST for b in PLACE_SECOND])
    names = np.empty(len(parent), dtype=pool.dtype)
    order = np.argsort(parent, kind="stable")
    bounds = np.searchsorted(parent[order], np.arange(parent.max() + 2))
    for p in range(len(bounds) - 1):
        members = order[bounds[p] : bounds[p + 1]]
        if members.size:
            picks = rng.choice(len(pool), members.size, replace=members.size > len(pool))
            names[members] = pool[picks]
    return names


def district_codes(district_points: FloatArray) -> list[str]:
    """Real Chongqing district codes: the central ones (渝中区…) to the districts nearest the core.

    District codes are real GB/T 2260 codes, so they follow no reading order.
    """
    distance = np.hypot(
        (district_points[:, 0] - CORE[0]) * COS_LAT, district_points[:, 1] - CORE[1]
    )
    codes = [""] * len(district_points)
    for rank, i in enumerate(np.argsort(distance, kind="stable")):
        codes[i] = DISTRICT_PRIORITY[rank]
    return codes


@dataclass
class Division:
    """The whole division, bottom-up: each level's ``parent`` indexes the level above."""

    city: shapely.MultiPolygon
    district: Level
    street: Level
    community: Level
    grid: Level


def build_division(grids: int, rngs: dict[str, np.random.Generator]) -> Division:
    """Tessellate the city into ``grids`` grids and group them up to districts.

    ``rngs`` holds independent streams ``outline``, ``seeds``, ``groups`` and ``names``
    so that, e.g., the outline does not change with the number of grids.
    """
    counts = level_counts(grids)
    outline = city_outline(rngs["outline"])
    cells = grid_cells(grid_seeds(rngs["seeds"], outline, grids), outline)
    grid = Level(geoms=as_multipolygons(cells), parent=_NO_PARENT, points=interior_points(cells))
    adjacency = edge_adjacency(cells)
    levels = [grid]
    for name in ("community", "street", "district"):
        child = levels[-1]
        labels = group(child.points, counts[name], rngs["groups"], adjacency)
        child.parent = labels
        geoms = dissolve(child.geoms, labels, counts[name])
        levels.append(Level(geoms=geoms, parent=_NO_PARENT, points=interior_points(geoms)))
        adjacency = parent_adjacency(labels, adjacency)
    district = levels[-1]
    district.parent = np.zeros(len(district.geoms), dtype=np.int64)
    city = as_multipolygons(np.array([shapely.coverage_union_all(district.geoms)]))[0]
    division = Division(
        city=city, district=district, street=levels[2], community=levels[1], grid=grid
    )
    _assign_codes(division)
    _assign_names(division, rngs["names"])
    return division


def _assign_codes(div: Division) -> None:
    div.district.codes = np.array(district_codes(div.district.points), dtype="<U15")
    parent = div.district
    for child in (div.street, div.community, div.grid):
        bounds = shapely.bounds(parent.geoms)
        seq = reading_order(child.points, child.parent, bounds)
        if seq.max() > 999:
            raise ValueError("more than 999 children in one parent: the 3-digit code overflows")
        assert parent.codes is not None
        child.codes = np.char.add(parent.codes[child.parent], np.char.zfill(seq.astype(str), 3))
        parent = child


def _assign_names(div: Division, rng: np.random.Generator) -> None:
    assert div.district.codes is not None and div.grid.codes is not None
    div.district.names = np.array([DISTRICTS[c] for c in div.district.codes])
    street_area = shapely.area(div.street.geoms)
    urban_street = street_area <= np.median(street_area)
    div.street.names = np.char.add(
        place_names(rng, div.street.parent), np.where(urban_street, "街道", "镇")
    )
    community_area = shapely.area(div.community.geoms)
    urban = urban_street[div.community.parent] | (
        community_area <= np.quantile(community_area, 0.3)
    )
    div.community.names = np.char.add(
        place_names(rng, div.community.parent), np.where(urban, "社区", "村")
    )
    seq = np.char.lstrip(np.array([c[-3:] for c in div.grid.codes]), "0")
    div.grid.names = np.char.add(np.char.add("第", seq), "网格")


def division_frame(div: Division) -> gpd.GeoDataFrame:
    """All areas as one GeoDataFrame (code, level, name, parent_code, geometry), top down."""
    frames = [
        pd.DataFrame(
            {
                "code": [CITY_CODE],
                "level": "city",
                "name": CITY_NAME,
                "parent_code": None,
                "geometry": [div.city],
            }
        )
    ]
    parent_codes = np.array([CITY_CODE], dtype=object)
    for level in ("district", "street", "community", "grid"):
        lv: Level = getattr(div, level)
        assert lv.codes is not None and lv.names is not None
        frame = pd.DataFrame(
            {
                "code": lv.codes.astype(object),
                "level": level,
                "name": lv.names.astype(object),
                "parent_code": parent_codes[lv.parent],
                "geometry": lv.geoms,
            }
        )
        frames.append(frame.sort_values("code", kind="stable"))
        parent_codes = lv.codes.astype(object)
    areas = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(areas, geometry="geometry", crs="EPSG:4326")
