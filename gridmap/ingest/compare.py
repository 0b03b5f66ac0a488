"""The active generation's areas of one level, and how a file's features differ from
them: which are the same areas (code and geometry, up to ring orientation), which are
added, changed or removed. Both commit paths of :mod:`gridmap.ingest.publish` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely

from gridmap.errors import NotFoundError
from gridmap.generations import valid_in_sql
from gridmap.ingest import bulk
from gridmap.ingest.checks import CHILD_LEVEL, PARENT_LEVEL, Parents, locations, m2


@dataclass
class Published:
    """What the active generation holds for one level, fetched while the file is read."""

    generation: int
    checked_levels: list[str]
    parents: Parents
    old: pd.DataFrame
    """One row per area: id, code, name, parent_code, wkb (little-endian, one-part
    MultiPolygons as their Polygon: what :func:`canonical_wkb` gives unoriented)."""


_VALID = valid_in_sql("%(g)s")


def load_parents(conn: psycopg.Connection, level: str, generation: int) -> Parents:
    """Codes and geometries of the areas of ``level`` valid in ``generation``."""
    row = conn.cursor(binary=True).execute(
        "SELECT array_agg(code ORDER BY code), array_agg(ST_AsBinary(geom) ORDER BY code)"
        f" FROM areas WHERE level = %(level)s AND {_VALID}",
        {"level": level, "g": generation},
    ).fetchone()
    if row is None or row[0] is None:
        return Parents.empty()
    return Parents(np.array(row[0], dtype=object), shapely.from_wkb(row[1]))


_OLD_AREAS = f"""
SELECT array_agg(id), array_agg(code), array_agg(name), array_agg(parent_code),
       array_agg(ST_AsBinary(CASE WHEN ST_NumGeometries(geom) = 1 THEN ST_GeometryN(geom, 1)
                                  ELSE geom END, 'NDR'))
FROM areas WHERE level = %(level)s AND {_VALID}
"""
_OLD_COLUMNS = ("id", "code", "name", "parent_code", "wkb")


def fetch_published(conn: psycopg.Connection, level: str) -> Published:
    """The active generation's areas of ``level`` (geometries as WKB) and of the level
    above."""
    row = conn.execute("SELECT id, checked_levels FROM generations WHERE active").fetchone()
    if row is None:
        raise NotFoundError("no active generation: load a division first (gridmap sample)")
    generation = int(row[0])
    # One row of arrays: far fewer Python objects built under the GIL than a row per area,
    # so the file is read beside it at full speed.
    arrays = conn.cursor(binary=True).execute(_OLD_AREAS, {"level": level, "g": generation}
                                              ).fetchone()  # fmt: skip
    assert arrays is not None
    old = pd.DataFrame({name: pd.Series(values or [], dtype=np.int64 if name == "id" else object)
                        for name, values in zip(_OLD_COLUMNS, arrays, strict=True)})  # fmt: skip
    checked = list(row[1] or [])
    parents = load_parents(conn, PARENT_LEVEL[level], generation)
    parents.clean = PARENT_LEVEL[level] in checked
    return Published(generation, checked, parents, old)


def canonical_wkb(geoms: np.ndarray, oriented: bool = True) -> np.ndarray:
    """Each geometry's little-endian 2D WKB, one-part MultiPolygons as their Polygon;
    ``oriented``: exterior rings clockwise and holes counter-clockwise, so that an area
    compares equal however a file wound its rings (``oriented=False``: as they are)."""
    geoms = _one_part_as_polygon(geoms)
    if oriented:
        geoms = shapely.orient_polygons(geoms, exterior_cw=True)
    return np.asarray(shapely.to_wkb(geoms, byte_order=1, output_dimension=2), dtype=object)


def _one_part_as_polygon(geoms: np.ndarray) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object).copy()
    one_part = (shapely.get_type_id(geoms) == 6) & (shapely.get_num_geometries(geoms) == 1)
    geoms[one_part] = shapely.get_geometry(geoms[one_part], 0)
    return geoms


SAME_WITHIN_DEG = 1e-9
"""Vertices this close (about 0.1 mm) are the same point: the noise of a re-projection
round trip (CGCS2000 Gauss-Kruger → EPSG:4326 is ~1e-14°) is not a change of area."""


def same_shape(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Per pair: the same area — equal as point sets, or vertex for vertex (in any ring
    orientation and start) within :data:`SAME_WITHIN_DEG`."""
    same = np.asarray(shapely.equals(new, old), dtype=bool)
    rest = np.flatnonzero(~same)
    if rest.size:
        a, b = _one_part_as_polygon(new[rest]), _one_part_as_polygon(old[rest])
        same[rest] = (shapely.equals_exact(a, b, SAME_WITHIN_DEG)
                      | shapely.equals_exact(shapely.normalize(a), shapely.normalize(b),
                                             SAME_WITHIN_DEG))  # fmt: skip
    return same


def match_features(
    old: pd.DataFrame, frame: gpd.GeoDataFrame, read_wkb: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: the row of ``old`` with its code (-1: none), and whether the
    geometry is byte-identical to that row's (up to ring orientation).

    ``read_wkb`` is the reader's WKB of the geometries as read (None entries: not
    known); the others are encoded here.
    """
    codes = pd.Series(frame.code.to_numpy(dtype=object), dtype=object)
    position = (pd.Index(old.code).get_indexer(codes) if len(old)
                else np.full(len(codes), -1))  # fmt: skip
    identical = np.zeros(len(frame), dtype=bool)
    known = np.flatnonzero(position >= 0)
    if known.size:
        geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)[known]
        missing = shapely.is_missing(geoms)
        stored = old.wkb.to_numpy()[position[known]]
        # A re-imported export winds its rings as the stored copy: compare the bytes as
        # they are first, and orient both sides only where they differ.
        same = ~missing & (_as_read(geoms, read_wkb, known) == stored)
        other = np.flatnonzero(~same & ~missing)
        if other.size:
            theirs = canonical_wkb(shapely.from_wkb(stored[other]))
            same[other] = canonical_wkb(geoms[other]) == theirs
        identical[known] = same
    return position, identical


def _as_read(geoms: np.ndarray, read_wkb: np.ndarray | None, known: np.ndarray) -> np.ndarray:
    """WKB of ``geoms`` (features ``known``) in their own ring orientation."""
    if read_wkb is None:
        return canonical_wkb(geoms, oriented=False)
    wkb = read_wkb[known].copy()
    todo = np.flatnonzero(pd.isna(wkb))
    if todo.size:
        wkb[todo] = canonical_wkb(geoms[todo], oriented=False)
    return wkb


def unchanged_features(
    published: Published, frame: gpd.GeoDataFrame, position: np.ndarray, identical: np.ndarray,
    level: str,
) -> np.ndarray | None:
    """Features the published generation already checked: same code (once in the file),
    byte-identical geometry, same parent. None when that generation was not checked."""
    if level not in published.checked_levels:
        return None
    if published.old.empty:
        return np.zeros(len(frame), dtype=bool)
    codes = pd.Series(frame.code.to_numpy(dtype=object), dtype=object)
    once = ~codes.duplicated(keep=False).to_numpy() & codes.notna().to_numpy()
    old_parent = published.old.parent_code.to_numpy(dtype=object)[np.maximum(position, 0)]
    same_parent = old_parent == frame.parent_code.to_numpy(dtype=object)
    return identical & once & same_parent & (position >= 0)


def touched_parents(
    published: Published, position: np.ndarray, unchanged: np.ndarray | None
) -> list[str]:
    """Parent codes of the published areas that are not in the file unchanged."""
    if unchanged is None:
        return []
    kept = np.zeros(len(published.old), dtype=bool)
    kept[position[unchanged]] = True
    return sorted({c for c in published.old.parent_code[~kept].tolist() if c is not None})


def _old_geometries(old: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Geometries of the areas at ``rows`` of ``old``."""
    return np.asarray(shapely.from_wkb(old.wkb.to_numpy()[rows]), dtype=object)


@dataclass
class ChildrenLeft:
    """An area whose active children (the level below) the diff leaves behind: it is
    removed while they name it as their parent, or reshaped so that they lie partly
    outside it."""

    code: str
    children: int
    examples: list[str]
    location: tuple[float, float] | None


@dataclass
class Diff:
    """How a layer differs from the published generation's areas of its level."""

    added: np.ndarray
    changed: np.ndarray
    changed_ids: list[int]
    removed_ids: list[int]
    summary: dict[str, Any]
    """The report's ``diff``."""
    reshaped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Features (of ``changed``) whose geometry differs from the published area's."""
    orphaning: list[ChildrenLeft] = field(default_factory=list)
    """Removed areas whose active children still name them (see :func:`children_left`)."""
    stranded: list[ChildrenLeft] = field(default_factory=list)
    """Reshaped areas whose active children lie partly outside them."""
    staffed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Added grids (of ``added``) that re-assignment gives the workers of a removed grid
    (see :func:`workers_moving_in`)."""

    @property
    def moves_areas(self) -> bool:
        """Whether publishing it adds, changes or removes any area."""
        return bool(self.added.size or self.changed.size or self.removed_ids)


def diff_layer(
    frame: gpd.GeoDataFrame, published: Published, position: np.ndarray, identical: np.ndarray,
) -> Diff:
    """Added, removed, changed, unchanged areas against the published generation.

    Geometries whose WKB differs from the published one (``identical`` false) are
    compared again by :func:`same_shape`: the same shape with another vertex order, or
    with re-projection noise, counts as unchanged (and keeps its stored geometry).
    """
    old = published.old
    codes = frame.code.to_numpy(dtype=object)
    read_geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    match = position
    known = np.flatnonzero(match >= 0)
    same_geom = identical.copy()
    recheck = known[~same_geom[known]]
    if recheck.size:
        same_geom[recheck] = same_shape(read_geoms[recheck], _old_geometries(old, match[recheck]))
    same_attrs = np.zeros(len(frame), dtype=bool)
    if known.size:
        same_attrs[known] = (
            (old.name.to_numpy(dtype=object)[match[known]] == frame.name.to_numpy()[known])
            & (old.parent_code.to_numpy(dtype=object)[match[known]]
               == frame.parent_code.to_numpy(dtype=object)[known])
        )  # fmt: skip
    unchanged = same_geom & same_attrs
    changed = np.flatnonzero((match >= 0) & ~unchanged)
    added = np.flatnonzero(match < 0)
    old_ids_changed = old.id.to_numpy()[match[changed]].tolist()
    old_geoms_changed = _old_geometries(old, match[changed])
    new_changed = bulk._as_multi(read_geoms[changed])
    ratios: Any = _symdiff_ratios(new_changed, old_geoms_changed) if changed.size else []
    kept = np.zeros(len(old), dtype=bool)
    kept[match[known]] = True
    gone = old[~kept].sort_values("code")
    removed = gone.code.tolist()
    summary = {
        "previous_generation": published.generation,
        "added": int(added.size),
        "removed": len(removed),
        "changed": int(changed.size),
        "unchanged": int(unchanged.sum()),
        "added_codes": codes[added].tolist()[:1000],
        "removed_codes": removed[:1000],
        "changed_areas": [
            {"code": codes[i], "symmetric_difference_ratio": round(float(r), 6)}
            for i, r in zip(changed[:1000], ratios[:1000], strict=False)
        ],
    }
    return Diff(added, changed, [int(i) for i in old_ids_changed],
                [int(i) for i in gone.id.tolist()], summary,
                changed[~same_geom[changed]])  # fmt: skip


# Per parent: its active children that it would leave — all of them for a parent
# removed (no new boundary), those more than `fraction` outside the new boundary else.
_CHILDREN_LEFT = f"""
SELECT c.parent_code, count(*), (array_agg(c.code ORDER BY c.code))[1:3]
FROM areas c JOIN unnest(%(codes)s::text[], %(wkb)s::bytea[]) AS p(code, wkb)
  ON c.parent_code = p.code
WHERE c.level = %(child)s AND {valid_in_sql("%(g)s", "c")}
  AND (p.wkb IS NULL OR ST_Area(ST_Difference(c.geom, ST_GeomFromWKB(p.wkb, 4326)))
                        > %(fraction)s * ST_Area(c.geom))
GROUP BY c.parent_code
"""


def children_left(
    conn: psycopg.Connection, level: str, published: Published, frame: gpd.GeoDataFrame,
    diff: Diff, outside_fraction: float,
) -> None:
    """Set ``diff.orphaning`` and ``diff.stranded``: the removed areas whose active
    children still name them, and the reshaped ones whose children (as published) would
    lie more than ``outside_fraction`` outside their new boundary. One query, on those
    parents' children only."""
    if level not in CHILD_LEVEL or not (diff.removed_ids or diff.reshaped.size):
        return
    gone = published.old[published.old.id.isin(diff.removed_ids)]
    old_geoms = shapely.from_wkb(gone.wkb.to_numpy()) if len(gone) else np.array([])
    new_geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)[diff.reshaped]
    codes = [*gone.code.tolist(), *frame.code.to_numpy(dtype=object)[diff.reshaped].tolist()]
    rows = conn.execute(_CHILDREN_LEFT, {
        "codes": codes, "wkb": [None] * len(gone) + shapely.to_wkb(new_geoms).tolist(),
        "child": CHILD_LEVEL[level], "g": published.generation, "fraction": outside_fraction,
    }).fetchall()  # fmt: skip
    left = {code: (int(n), list(examples)) for code, n, examples in rows}
    places = locations(np.concatenate([old_geoms, new_geoms]).astype(object))
    found = [ChildrenLeft(code, *left[code], place)
             for code, place in zip(codes, places, strict=True) if code in left]  # fmt: skip
    diff.orphaning, diff.stranded = [], []
    removed = set(gone.code.tolist())
    for item in found:
        (diff.orphaning if item.code in removed else diff.stranded).append(item)


def workers_moving_in(conn: psycopg.Connection, level: str, published: Published,
                      frame: gpd.GeoDataFrame, diff: Diff) -> None:  # fmt: skip
    """Set ``diff.staffed``: the added grids that will receive the workers of a removed
    grid — the grid covering its point-on-surface, lowest code first, as
    :mod:`gridmap.ingest.reassign` moves them (a renumbered grid keeps its workers)."""
    if level != "grid" or not (diff.removed_ids and diff.added.size):
        return
    gone = published.old[published.old.id.isin(diff.removed_ids)]
    staffed = {row[0] for row in conn.execute(
        "SELECT DISTINCT grid_code FROM worker_assignments WHERE grid_code = ANY(%s)",
        (gone.code.tolist(),))}  # fmt: skip
    gone = gone[gone.code.isin(staffed)]
    if gone.empty:
        return
    points = shapely.point_on_surface(shapely.from_wkb(gone.wkb.to_numpy()))
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    point, feature = shapely.STRtree(geoms).query(points, predicate="covered_by")
    codes = frame.code.to_numpy(dtype=object)
    first: dict[int, int] = {}  # removed grid → the feature its workers go to
    for p, f in zip(point.tolist(), feature.tolist(), strict=True):
        if p not in first or codes[f] < codes[first[p]]:
            first[p] = f
    diff.staffed = np.intersect1d(diff.added, np.fromiter(first.values(), dtype=int))


def _symdiff_ratios(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    new = np.where(shapely.is_valid(new), new, shapely.make_valid(new))  # errors still blocked
    sym = m2(shapely.symmetric_difference(new, old))
    union = m2(shapely.union(new, old))
    return sym / np.maximum(union, 1e-12)
