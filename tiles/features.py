"""OGC API – Features over the map layers: collections and their items as GeoJSON.

The collections are the tile layers (same rows, same properties, EPSG:4326 geometry).
Paging is ``limit``/``offset``; ``properties`` selects among a layer's known fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.layers import BBox, validate_bbox
from tiles.layers import LAYERS, Layer, get_layer, load_sql

WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class ItemPage:
    """One page of features and how many match in all."""

    features: list[dict[str, Any]]
    matched: int


def feature_layers() -> list[Layer]:
    """The layers served as OGC collections (those with an items query)."""
    return [layer for layer in LAYERS.values() if _features_sql(layer) is not None]


def get_collection(collection: str) -> Layer:
    """The layer behind collection ``collection``; NotFoundError if there is none."""
    layer = get_layer(collection)
    if _features_sql(layer) is None:
        raise NotFoundError(f"collection {collection!r} has no features")
    return layer


def _features_sql(layer: Layer) -> str | None:
    if layer.area_level is not None:
        return "areas_features.sql"
    if layer.name in ("buildings", "facilities", "events"):
        return f"{layer.name}_features.sql"
    return None


def parse_bbox(raw: str | None) -> BBox | None:
    """``west,south,east,north`` from a query string; InvalidInputError if malformed."""
    if raw is None or raw == "":
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise InvalidInputError(
            f"bbox {raw!r} is malformed: expected 4 numbers west,south,east,north",
            details=[{"field": "bbox", "value": raw}],
        ) from None
    return validate_bbox(values)


def select_properties(layer: Layer, raw: str | None) -> list[str] | None:
    """The requested property names (None: all); unknown names are an error."""
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in layer.fields]
    if unknown:
        raise InvalidInputError(
            f"unknown properties {unknown} for {layer.name}; known: {sorted(layer.fields)}",
            details=[{"field": "properties", "value": n} for n in unknown],
        )
    return names


def query_items(
    db: Session | Connection,
    collection: str,
    *,
    bbox: BBox | None = None,
    limit: int = 100,
    offset: int = 0,
    properties: Iterable[str] | None = None,
    item_id: str | None = None,
    scopes: list[str] | None = None,
) -> ItemPage:
    """A page of features of ``collection`` as GeoJSON Feature dicts (ordered by code)."""
    layer = get_collection(collection)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidInputError(
            f"limit must be 1..{MAX_LIMIT} and offset ≥ 0",
            details=[{"field": "limit", "value": limit}, {"field": "offset", "value": offset}],
        )
    box = bbox or WORLD
    params: dict[str, Any] = {
        "id": item_id, "has_bbox": bbox is not None, "w": box[0], "s": box[1], "e": box[2],
        "n": box[3], "limit": limit, "offset": offset, "level": layer.area_level, "scopes": scopes,
    }  # fmt: skip
    ref = f"tiles.sql:{_features_sql(layer)}"
    rows = db.execute(load_sql(ref), params).all()
    keep = list(properties) if properties is not None else None
    features = [_feature(r.id, r.properties, r.geometry, keep) for r in rows]
    return ItemPage(features, int(rows[0].matched) if rows else 0)


def get_item(
    db: Session | Connection, collection: str, item_id: str, scopes: list[str] | None = None
) -> dict[str, Any]:
    """One feature by its code; NotFoundError if none (or outside the caller's area)."""
    page = query_items(db, collection, item_id=item_id, limit=1, scopes=scopes)
    if not page.features:
        raise NotFoundError(f"{collection} has no item {item_id!r}")
    return page.features[0]


def _feature(
    fid: str, props: dict[str, Any] | str, geometry: str, keep: list[str] | None
) -> dict[str, Any]:
    values = json.loads(props) if isinstance(props, str) else dict(props)
    if keep is not None:
        values = {k: values.get(k) for k in keep}
    return {"type": "Feature", "id": fid, "geometry": json.loads(geometry), "properties": values}


def city_extent(db: Session | Connection) -> BBox:
    """The extent of the active division (the whole world if none is loaded)."""
    row = db.execute(load_sql("tiles.sql:extent.sql")).one()
    if row[0] is None:
        return WORLD
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
