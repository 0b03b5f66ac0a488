"""The map layers: which table, which zooms, which properties — and building one tile.

Each layer's tile SQL lives in ``tiles/sql/<file>.sql`` and takes bound parameters only.
Other modules may add layers with :func:`register_layer`. ``grids`` carries
``open_events`` (a count over the events table) and ``events`` shows the open events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection

from gridmap.errors import NotFoundError, OutOfRangeError

MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64
EARTH_CIRCUMFERENCE_M = 40_075_016.685578488
GENERALISE_BELOW_ZOOM = 14


@dataclass(frozen=True)
class Layer:
    """One map layer: its tile SQL, zoom range and the properties its features carry."""

    name: str
    title: str
    sql_file: str
    minzoom: int
    geometry_type: str
    fields: dict[str, str]
    maxzoom: int = MAX_ZOOM
    params: dict[str, Any] = field(default_factory=dict)
    area_level: str | None = None
    """For area layers: the ``areas.level`` (the OGC features read the same rows)."""


_AREA_FIELDS = {"code": "String", "name": "String", "level": "String", "parent_code": "String"}
LAYERS: dict[str, Layer] = {}


def register_layer(layer: Layer) -> None:
    """Add or replace a layer (e.g. ``events`` once the events module exists)."""
    LAYERS[layer.name] = layer


def use_sql(name: str, sql_file: str, *, package: str = "tiles.sql") -> None:
    """Swap a layer's tile SQL (same columns), e.g. grids with ``open_events`` counted."""
    LAYERS[name] = replace(get_layer(name), sql_file=f"{package}:{sql_file}")


def get_layer(name: str) -> Layer:
    """The layer ``name``; NotFoundError naming the known layers otherwise."""
    try:
        return LAYERS[name]
    except KeyError:
        known = ", ".join(sorted(LAYERS))
        raise NotFoundError(f"unknown layer {name!r}; layers: {known}") from None


for _layer in (
    Layer("districts", "Districts (区县)", "areas.sql", 0, "polygon", _AREA_FIELDS,
          params={"level": "district"}, area_level="district"),
    Layer("streets", "Streets and towns (街道/乡镇)", "areas.sql", 8, "polygon", _AREA_FIELDS,
          params={"level": "street"}, area_level="street"),
    Layer("communities", "Communities and villages (社区/村)", "areas.sql", 10, "polygon",
          _AREA_FIELDS, params={"level": "community"}, area_level="community"),
    Layer("grids", "Grids (网格)", "grids.sql", 12, "polygon",
          {"code": "String", "name": "String", "parent_code": "String",
           "open_events": "Number"}, area_level="grid"),
    Layer("buildings", "Buildings (房屋)", "buildings.sql", 14, "polygon",
          {"code": "String", "use": "String", "floors": "Number", "grid_code": "String"}),
    Layer("facilities", "Facilities (部件)", "facilities.sql", 15, "point",
          {"code": "String", "major_code": "String", "class": "String", "name": "String",
           "state": "String", "grid_code": "String"}),
    # Open events; no personal data (reporter, address, description) ever reaches a tile.
    Layer("events", "Open events (事件)", "events.sql", 12, "point",
          {"id": "Number", "category": "String", "status": "String", "priority": "String",
           "traffic_light": "String"}),
):  # fmt: skip
    register_layer(_layer)


@cache
def load_sql(ref: str) -> TextClause:
    """``tiles/sql/<file>`` (or ``package:file``) as a SQLAlchemy text clause."""
    package, _, name = ref.rpartition(":")
    source = resources.files(package or "tiles.sql").joinpath(name).read_text("utf-8")
    return text(source)


def check_tile(z: int, x: int, y: int) -> None:
    """OutOfRangeError unless z/x/y lies in the WebMercatorQuad tile matrix."""
    if not 0 <= z <= MAX_ZOOM:
        raise OutOfRangeError(f"zoom {z} is outside 0..{MAX_ZOOM}", details=[{"field": "z"}])
    side = 1 << z
    for axis, value in (("x", x), ("y", y)):
        if not 0 <= value < side:
            raise OutOfRangeError(
                f"tile {axis}={value} is outside 0..{side - 1} at zoom {z}",
                details=[{"field": axis, "value": value}],
            )


def tolerance_for(z: int) -> float:
    """Simplification tolerance (metres) at zoom ``z``: about a screen pixel, 0 from z14."""
    if z >= GENERALISE_BELOW_ZOOM:
        return 0.0
    return EARTH_CIRCUMFERENCE_M / math.ldexp(256.0, z)


def tile_query(
    layer: Layer, z: int, x: int, y: int, cap: int, scopes: list[str] | None = None,
) -> tuple[TextClause, dict[str, Any]] | None:
    """The tile SQL of ``layer`` at z/x/y and its bound parameters (None: an empty tile).

    ``scopes``: code ``LIKE`` patterns of the caller's area (None: everything). The
    tile is empty below the layer's min zoom; OutOfRangeError outside the tile matrix.
    """
    check_tile(z, x, y)
    if z < layer.minzoom or z > layer.maxzoom:
        return None
    params = {
        "z": z, "x": x, "y": y, "layer": layer.name, "extent": EXTENT, "buffer": BUFFER,
        "margin": BUFFER / EXTENT, "tolerance": tolerance_for(z), "cap": cap, "scopes": scopes,
        **layer.params,
    }  # fmt: skip
    return load_sql(sql_ref(layer)), params


def sql_ref(layer: Layer) -> str:
    """``package:file`` of the layer's tile SQL."""
    return layer.sql_file if ":" in layer.sql_file else f"tiles.sql:{layer.sql_file}"


def build_tile(
    conn: Connection, layer: Layer, z: int, x: int, y: int, cap: int,
    scopes: list[str] | None = None,
) -> bytes:
    """The Mapbox Vector Tile of ``layer`` at z/x/y (empty below the layer's min zoom).

    ``scopes``: code ``LIKE`` patterns of the caller's area (None: everything).
    """
    query = tile_query(layer, z, x, y, cap, scopes)
    if query is None:
        return b""
    data = conn.execute(*query).scalar()
    return bytes(data or b"")
