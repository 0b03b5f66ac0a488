"""Hex EWKB of many polygons at once, laid out with NumPy, for ``COPY`` into geometry
columns.

``shapely.to_wkb`` builds one ``bytes`` object per geometry and each needs a ``.hex()``;
for the two geometry columns of 65,000 grids (storage and Web Mercator) that, with the
promotion to MultiPolygon and the projection, was 0.6–0.9 s of Python on an import's
critical path. Here the byte layout is computed once from the ragged coordinate arrays,
both columns share it (only the SRID and the coordinates differ), and each column is
one ``hex()`` of one buffer, cut per geometry. The bytes are exactly shapely's
(little-endian, SRID on the outer geometry only); tests compare them.
"""

from __future__ import annotations

import numpy as np
import shapely

_SRID_FLAG = 0x20000000
_POLYGON, _MULTIPOLYGON = 3, 6
_GEOMETRY_HEADER = 13  # byte order, type, SRID, count of parts (or of rings)
_POLYGON_HEADER = 9  # byte order, type, count of rings
_RING_HEADER = 4  # count of points
_POINT = 16  # x, y as float64


class PolygonLayout:
    """Where every header and coordinate of the EWKB of ``geoms`` goes in one buffer.

    ``multi`` writes every geometry as a MultiPolygon (Polygons promoted to one part,
    as the ``areas`` columns want); otherwise all must be Polygons.
    """

    def __init__(self, geoms: np.ndarray, multi: bool) -> None:
        parts, parts_offsets = _parts(geoms)
        ring_offsets, poly_offsets = _rings(parts)
        self.coords = shapely.get_coordinates(geoms)
        points = np.diff(ring_offsets)
        ring_size = _RING_HEADER + _POINT * points
        if multi:
            poly_size = _POLYGON_HEADER + _segment_sums(ring_size, poly_offsets)
            self.size = _GEOMETRY_HEADER + _segment_sums(poly_size, parts_offsets)
            self.start = _exclusive_cumsum(self.size)
            poly_start = _starts_within(self.start + _GEOMETRY_HEADER, poly_size, parts_offsets)
            ring_start = _starts_within(poly_start + _POLYGON_HEADER, ring_size, poly_offsets)
        else:
            self.size = _GEOMETRY_HEADER + _segment_sums(ring_size, poly_offsets)
            self.start = _exclusive_cumsum(self.size)
            ring_start = _starts_within(self.start + _GEOMETRY_HEADER, ring_size, poly_offsets)
        self._point_start = _starts_within(ring_start + _RING_HEADER,
                                           np.full(ring_offsets[-1], _POINT), ring_offsets)
        self._template = np.zeros(int(self.size.sum()), dtype=np.uint8)
        words = _windows(self._template, 4)
        self._template[self.start] = 1  # little-endian
        words[self.start + 1] = _u32(_SRID_FLAG | (_MULTIPOLYGON if multi else _POLYGON))
        words[self.start + 9] = _u32(np.diff(parts_offsets if multi else poly_offsets))
        if multi:
            self._template[poly_start] = 1
            words[poly_start + 1] = _u32(_POLYGON)
            words[poly_start + 5] = _u32(np.diff(poly_offsets))
        words[ring_start] = _u32(points)

    def hex(self, srid: int, coords: np.ndarray | None = None) -> list[str]:
        """Hex EWKB of each geometry, with ``coords`` (default: the geometries' own,
        in the order of ``self.coords``) and ``srid``."""
        buffer = self._template.copy()
        _windows(buffer, 4)[self.start + 5] = _u32(srid)
        xy = np.ascontiguousarray(self.coords if coords is None else coords, dtype="<f8")
        _windows(buffer, _POINT)[self._point_start] = xy.view(np.uint8).reshape(-1, _POINT)
        text = buffer.tobytes().hex()  # two characters per byte
        starts, ends = 2 * self.start, 2 * (self.start + self.size)
        return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def encodable(geoms: np.ndarray, multi: bool) -> bool:
    """Whether ``PolygonLayout`` can encode ``geoms``: 2-D (no Z, no M), non-empty
    Polygons (and MultiPolygons when ``multi``). Anything else goes through shapely."""
    if geoms.size == 0 or shapely.is_missing(geoms).any() or shapely.is_empty(geoms).any():
        return False
    allowed = (_POLYGON, _MULTIPOLYGON) if multi else (_POLYGON,)
    return bool(np.isin(shapely.get_type_id(geoms), allowed).all()
                and not shapely.has_z(geoms).any() and not shapely.has_m(geoms).any())


def _parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polygons of ``geoms`` in order, and where each geometry's start. Polygons are
    their own single part (``shapely.get_parts`` would copy every one)."""
    counts = shapely.get_num_geometries(geoms)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    multi = np.flatnonzero(shapely.get_type_id(geoms) == _MULTIPOLYGON)
    if multi.size == 0:
        return geoms, offsets
    parts = np.empty(offsets[-1], dtype=object)
    single = np.setdiff1d(np.arange(geoms.size), multi)
    parts[offsets[single]] = geoms[single]
    members, owner = shapely.get_parts(geoms[multi], return_index=True)
    parts[_positions(offsets[multi], counts[multi], owner)] = members
    return parts, offsets


def _rings(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of each ring's points and of each polygon's rings. Only polygons with
    holes are taken apart (the exterior ring of the others has all their points)."""
    holes = shapely.get_num_interior_rings(polygons)
    empty = shapely.is_empty(polygons)  # an empty part of a MultiPolygon has no ring
    rings_per_polygon = np.where(empty, 0, 1 + holes)
    poly_offsets = np.concatenate([[0], np.cumsum(rings_per_polygon)]).astype(np.int64)
    points = np.zeros(poly_offsets[-1], dtype=np.int64)
    plain = (holes == 0) & ~empty
    points[poly_offsets[:-1][plain]] = shapely.get_num_coordinates(polygons[plain])
    holed = np.flatnonzero(~plain)
    if holed.size:
        rings, owner = shapely.get_rings(polygons[holed], return_index=True)
        points[_positions(poly_offsets[holed], 1 + holes[holed], owner)] = (
            shapely.get_num_coordinates(rings))
    return np.concatenate([[0], np.cumsum(points)]).astype(np.int64), poly_offsets


def _positions(first: np.ndarray, counts: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Where each member goes, given its owner (listed in order, ``counts[i]`` members
    each) and where each owner's members start."""
    within = np.arange(owner.size) - _exclusive_cumsum(counts)[owner]
    return first[owner] + within


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of ``values[offsets[i]:offsets[i + 1]]`` for each i."""
    running = np.concatenate([[0], np.cumsum(values)])
    return running[offsets[1:]] - running[offsets[:-1]]


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(values)])[:-1].astype(np.int64)


def _starts_within(parent_start: np.ndarray, size: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Start of each child, laid out one after another from its parent's start."""
    before = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)  # one past the end too
    parent = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    return parent_start[parent] + before[:-1] - before[offsets[:-1]][parent]


def _windows(buffer: np.ndarray, width: int) -> np.ndarray:
    """Writable view of ``buffer`` whose row i is bytes i … i + width - 1."""
    return np.lib.stride_tricks.as_strided(buffer, shape=(buffer.size - width + 1, width),
                                           strides=(1, 1))  # fmt: skip


def _u32(values: int | np.ndarray) -> np.ndarray:
    """Little-endian uint32 bytes of ``values``, one row of 4 per value."""
    return np.atleast_1d(np.asarray(values, dtype="<u4")).view(np.uint8).reshape(-1, 4)
