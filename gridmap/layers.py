"""Data versions of the map layers: how the tile cache learns that data changed.

Every map layer has a counter in ``layer_versions``. Triggers bump the area layers when
areas or generations change (a new generation activated) and the buildings/facilities
layers when those tables change. Changes the triggers cannot see — an event created or
closed — are announced with :func:`invalidate`, optionally with the bounding box of the
change so that caches keep tiles elsewhere. A cache entry is fresh while its layer's
version is unchanged, or while no change since its version touches the tile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInputError

BBox = tuple[float, float, float, float]
"""(west, south, east, north) in EPSG:4326 degrees."""

_INVALIDATE = text(
    "SELECT gridmap_invalidate_layers(CAST(:layers AS text[]), "
    "CASE WHEN CAST(:has_bbox AS boolean) THEN ST_Transform(ST_MakeEnvelope("
    "CAST(:w AS float8), CAST(:s AS float8), CAST(:e AS float8), CAST(:n AS float8), 4326), "
    "3857) END)"
)
VERSIONS_SQL = "SELECT layer, version FROM layer_versions"
"""Every layer's current version (also run by the tile fast path's async pool)."""
_VERSIONS = text(VERSIONS_SQL)
_TOUCHED = text(
    """
    SELECT EXISTS (
      SELECT 1 FROM layer_changes
      WHERE layer = :layer AND version > :since
        AND (bbox IS NULL OR bbox && ST_TileEnvelope(:z, :x, :y))
    )
    """
)


def validate_bbox(bbox: Iterable[float], *, field: str = "bbox") -> BBox:
    """Check a (west, south, east, north) box in degrees; InvalidInputError if malformed."""
    values = tuple(float(v) for v in bbox)
    if len(values) != 4:
        raise InvalidInputError(
            f"{field} must have 4 numbers (west,south,east,north), got {len(values)}",
            details=[{"field": field, "value": list(values)}],
        )
    w, s, e, n = values
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90 and w <= e):
        raise InvalidInputError(
            f"{field} {list(values)} is not a west,south,east,north box in degrees",
            details=[{"field": field, "value": list(values)}],
        )
    return w, s, e, n


def invalidate(
    db: Session | Connection, layers: Iterable[str], bbox: Iterable[float] | None = None
) -> None:
    """Announce that data under ``layers`` changed (inside ``bbox``, or anywhere).

    Runs in the caller's transaction: the change becomes visible to tile caches when it
    commits, together with the data it describes.
    """
    names = sorted(set(layers))
    if not names:
        return
    box = validate_bbox(bbox) if bbox is not None else (0.0, 0.0, 0.0, 0.0)
    params: dict[str, Any] = {"layers": names, "has_bbox": bbox is not None}
    params.update(zip(("w", "s", "e", "n"), box, strict=True))
    db.execute(_INVALIDATE, params)


_DEFER_SETTING = "gridmap.defer_layer_changes"


def defer_layer_changes(conn: psycopg.Connection) -> None:
    """For the rest of the caller's transaction, its writes bump no layer version until
    :func:`announce_deferred` (migration 0018).

    For long writers (publishing a generation): a bump locks its layers' rows until
    commit, and every event stored bumps ``events`` and ``grids`` — it would wait for
    the whole transaction, or deadlock with it.
    """
    conn.execute("SELECT set_config(%s, 'on', true)", (_DEFER_SETTING,))


def announce_deferred(conn: psycopg.Connection) -> None:
    """End :func:`defer_layer_changes`: every layer is stale (anywhere) at commit."""
    conn.execute("SELECT set_config(%s, 'off', true)", (_DEFER_SETTING,))
    conn.execute("SELECT gridmap_invalidate_layers(ARRAY(SELECT layer FROM layer_versions))")


def layer_versions(db: Session | Connection) -> dict[str, int]:
    """The current version of every layer."""
    return {layer: int(version) for layer, version in db.execute(_VERSIONS)}


def tile_touched_since(
    db: Session | Connection, layer: str, since: int, tile: Mapping[str, int]
) -> bool:
    """Whether any change of ``layer`` after version ``since`` touches tile z/x/y."""
    return bool(db.execute(_TOUCHED, {"layer": layer, "since": since, **tile}).scalar())
