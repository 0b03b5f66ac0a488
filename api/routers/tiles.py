"""Vector tiles (Mapbox Vector Tile) and TileJSON of the map layers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.dependencies import EngineDep, TileCacheDep
from api.schemas import ErrorOut
from api.security import PrincipalDep
from api.tile_fastpath import MVT, etag_matches, scopes_of, tile_headers
from gridmap.config import get_settings
from tiles.features import city_extent
from tiles.layers import LAYERS, get_layer

router = APIRouter(tags=["tiles"])

LayerPath = Annotated[str, Path(description="layer name", examples=["grids"])]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "z/x/y outside the tile matrix"},
    404: {"model": ErrorOut, "description": "unknown layer"},
}


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.mvt",
    operation_id="get_tile",
    response_class=Response,
    responses={
        200: {"content": {MVT: {}}, "description": "Mapbox Vector Tile (may be empty)"},
        304: {"description": "not modified (If-None-Match matched the ETag)"},
        **ERRORS,
    },
)
async def get_tile(
    layer: LayerPath,
    z: int,
    x: int,
    y: int,
    cache: TileCacheDep,
    principal: PrincipalDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """One tile of ``layer`` (WebMercatorQuad), with ``ETag`` and ``Cache-Control``."""
    # api.tile_fastpath normally answers fresh hits and builds plain misses on the async
    # pool before routing; this route is the reference for the rest: stale entries (it
    # checks layer_changes), database trouble (mapped to 503), bad z/x/y, unknown layers.
    scopes = scopes_of(principal, layer)
    tile = cache.peek(layer, z, x, y, scopes)
    if tile is None:
        tile = await run_in_threadpool(cache.get, layer, z, x, y, scopes)
    headers = tile_headers(tile, get_settings().tile_max_age_s)
    if etag_matches(if_none_match, tile.etag):
        return Response(status_code=304, headers=headers)
    return Response(tile.body, media_type=MVT, headers=headers)


@router.get(
    "/tiles/{layer}/tilejson.json",
    operation_id="get_tilejson",
    response_model=dict[str, Any],
    responses={404: ERRORS[404]},
)
def get_tilejson(layer: LayerPath, request: Request, engine: EngineDep) -> Any:
    """TileJSON 3.0.0 of ``layer`` (tile URL template, zooms, fields, bounds)."""
    spec = get_layer(layer)
    with engine.connect() as conn:
        w, s, e, n = city_extent(conn)
    base = str(request.base_url).rstrip("/")
    return {
        "tilejson": "3.0.0",
        "name": spec.name,
        "description": spec.title,
        "scheme": "xyz",
        "tiles": [f"{base}/tiles/{spec.name}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": spec.minzoom,
        "maxzoom": spec.maxzoom,
        "bounds": [w, s, e, n],
        "center": [(w + e) / 2, (s + n) / 2, max(spec.minzoom, 10)],
        "vector_layers": [
            {"id": spec.name, "fields": spec.fields, "minzoom": spec.minzoom,
             "maxzoom": spec.maxzoom, "description": spec.title}
        ],
    }


@router.get("/tiles", operation_id="list_tile_layers", response_model=list[dict[str, Any]])
def list_layers(request: Request) -> Any:
    """The tile layers with their zoom ranges and TileJSON links."""
    base = str(request.base_url).rstrip("/")
    return [
        {"name": s.name, "title": s.title, "minzoom": s.minzoom, "maxzoom": s.maxzoom,
         "geometry_type": s.geometry_type, "tilejson": f"{base}/tiles/{s.name}/tilejson.json"}
        for s in LAYERS.values()
    ]
