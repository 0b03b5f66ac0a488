"""Reading shapefiles fast: polygon records parsed with NumPy, text fields as raw bytes.

GDAL (through pyogrio) reads everything, but for the usual grid file two of its steps
cost more than the rest of an import's checks: building WKB for every polygon (then
parsed again by shapely) and recoding every text value (Latin-1 → UTF-8 so that the
reader can detect the real encoding). Here the ``.shp`` records of type Polygon with
one closed ring each are turned into shapely polygons straight from the file's bytes,
and text fields come from GDAL unrecoded (``ENCODING=""``) for the reader to decode.
Every other record (several parts: GDAL decides which ring is a hole of which shell;
a ring too short or a length that does not add up; Z or M types) is read by GDAL as
before, so the result is always what GDAL would return (the tests compare them byte
for byte). A one-ring polygon that is not closed is refused, naming the feature.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

_NULL, _POLYGON = 0, 5
_HEADER = 44  # shape type, bounding box, number of parts, number of points


class DamagedRecord(ValueError):
    """A record GDAL would hand over as a geometry no one can build."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"feature {index}: {problem}")
        self.index = index
        self.problem = problem


@dataclass
class Records:
    """Where each record's content starts in the ``.shp`` and how long it is (bytes)."""

    start: np.ndarray
    length: np.ndarray


def shx_offsets(shx: Path) -> np.ndarray:
    """The record offsets (16-bit words) a ``.shx`` lists."""
    index = np.frombuffer(shx.read_bytes()[100:], dtype=">i4")
    return index[: index.size // 2 * 2].reshape(-1, 2)[:, 0].astype(np.int64)


def count_records(shp: Path) -> int:
    """Records found by walking the .shp's record headers (for error messages)."""
    data = shp.read_bytes()
    count, pos = 0, 100
    while pos + 8 <= len(data):
        length = struct.unpack_from(">i", data, pos + 4)[0]
        if length < 0:
            break
        count, pos = count + 1, pos + 8 + 2 * length
    return count


def index_records(shp: Path, offsets: np.ndarray) -> Records | None:
    """The records if ``offsets`` (the ``.shx``'s, in 16-bit words) are exactly the
    ``.shp``'s contiguous records; None when the index does not chain through the file.
    """
    size = shp.stat().st_size
    if offsets.size == 0:
        return Records(np.zeros(0, np.int64), np.zeros(0, np.int64)) if size < 108 else None
    start = offsets * 2  # bytes
    if offsets[0] != 50 or start.min() < 100 or start.max() + 8 > size:
        return None
    data = np.memmap(shp, dtype=np.uint8, mode="r")
    lengths = _int32(data, start + 4, ">i4")
    following = offsets + 4 + lengths  # where the next record starts (words)
    if (lengths < 0).any() or (following[:-1] != offsets[1:]).any():
        return None
    if following[-1] * 2 + 8 <= size:  # more records than the index lists
        return None
    return Records(start + 8, lengths * 2)


def read_attributes(path: Path) -> tuple[dict[str, Any], pa.Table]:
    """The ``.dbf``'s fields as GDAL reads them, text left in the file's own bytes
    (string columns may hold bytes that are not UTF-8: cast them to binary first).

    Field names are those bytes read as Latin-1 (the table's own names would be the
    raw bytes, which Arrow cannot hand to Python when they are not UTF-8).
    """
    meta, table = pyogrio.read_arrow(path, read_geometry=False, ENCODING="")
    return meta, table.rename_columns([str(name) for name in meta["fields"]])


def read_polygons(shp: Path, records: Records) -> tuple[np.ndarray, np.ndarray]:
    """Every record's geometry in file order (None for null shapes), as GDAL reads it,
    and each one-ring polygon's little-endian 2D WKB as it stands in the file (None for
    the records GDAL read): what ``shapely.to_wkb(geom, byte_order=1)`` gives, taken
    straight from the file's bytes.

    Raises
    ------
    DamagedRecord
        A one-part polygon whose ring does not end where it begins (GDAL passes it
        on and shapely cannot build it).
    """
    data = np.fromfile(shp, dtype=np.uint8)
    geoms = np.full(records.start.size, None, dtype=object)
    kind = _int32(data, records.start, "<i4") if records.start.size else np.zeros(0, np.int64)
    fast = np.flatnonzero(kind == _POLYGON)
    fast = fast[records.length[fast] >= _HEADER + 4]
    start = records.start[fast]
    parts = _int32(data, start + 36, "<i4")
    points = _int32(data, start + 40, "<i4")
    regular = (parts == 1) & (points >= 4) & \
        (records.length[fast] == _HEADER + 4 * parts + 16 * points)  # fmt: skip
    regular[regular] &= _int32(data, start[regular] + _HEADER, "<i4") == 0
    fast, start, points = fast[regular], start[regular], points[regular]
    coords = _coordinates(data, start + _HEADER + 4, points)
    ends = np.cumsum(points)
    closed = (coords[ends - points] == coords[ends - 1]).all(axis=1)
    if not closed.all():
        raise DamagedRecord(int(fast[np.argmin(closed)]), "its ring is not closed")
    rings = np.r_[0, ends]
    polygons = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON, coords, (rings, np.arange(points.size + 1))
    ) if points.size else np.zeros(0, dtype=object)  # fmt: skip
    geoms[fast] = polygons
    wkb = np.full(records.start.size, None, dtype=object)
    wkb[fast] = _polygon_wkb(data, start + _HEADER + 4, points)
    done = kind == _NULL
    done[fast] = True
    others = np.flatnonzero(~done)
    if others.size:  # GDAL reads what is not a plain one-ring polygon
        geoms[others] = _gdal_geometries(shp, others, geoms.size)
    return geoms, wkb


def _polygon_wkb(data: np.ndarray, start: np.ndarray, points: np.ndarray) -> list[bytes]:
    """A one-ring polygon's WKB: a 13-byte header, then the record's points, which the
    .shp stores as little-endian doubles exactly as WKB does."""
    header = struct.Struct("<BIII").pack
    view = data.data
    return [header(1, 3, 1, n) + view[at:at + 16 * n]
            for at, n in zip(start.tolist(), points.tolist(), strict=True)]  # fmt: skip


def _gdal_geometries(shp: Path, fids: np.ndarray, total: int) -> np.ndarray:
    """GDAL's geometries of records ``fids``: fetched one by one when they are few,
    else by reading every geometry (GDAL's fast sequential path)."""
    if fids.size <= max(100, total // 20):
        return pyogrio.read_dataframe(shp, fids=fids, columns=[], ENCODING="").geometry.to_numpy()
    every = pyogrio.read_dataframe(shp, columns=[], ENCODING="", use_arrow=True)
    return every.geometry.to_numpy()[fids]


def _int32(data: np.ndarray, at: np.ndarray, dtype: str) -> np.ndarray:
    """The 32-bit integers at byte offsets ``at`` (any alignment)."""
    raw = np.ascontiguousarray(data[np.asarray(at)[:, None] + np.arange(4)])
    return raw.view(dtype).ravel().astype(np.int64)


def _coordinates(data: np.ndarray, start: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The ``points[i]`` (x, y) doubles starting at byte ``start[i]``, concatenated.

    Records start at any even byte: the doubles are read through eight views of the
    file, one per alignment, each gathered where the offsets fall into it.
    """
    total = int(points.sum())
    offset = np.repeat(start - 16 * (np.cumsum(points) - points), points) + \
        16 * np.arange(total, dtype=np.int64)  # fmt: skip
    out = np.empty((total, 2))
    shift = offset % 8
    buffer = data.data
    for s in np.unique(shift).tolist():
        view = np.frombuffer(buffer, dtype="<f8", count=(data.size - s) // 8, offset=s)
        here = np.flatnonzero(shift == s)
        word = (offset[here] - s) // 8
        out[here, 0] = view[word]
        out[here, 1] = view[word + 1]
    return out
