"""Layers: a level's features as GeoJSON, zipped shapefile or GeoPackage."""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.dependencies import EngineDep
from api.schemas import ErrorOut
from api.security import PrincipalDep
from gridmap.auth.scope import scope_patterns
from gridmap.ingest import export

router = APIRouter(prefix="/api/v1", tags=["layers"])

ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get(
    "/layers/{level}",
    operation_id="get_layer",
    response_class=Response,
    responses={
        200: {"content": {media: {} for _d, _e, media in export.FORMATS.values()},
              "description": "the layer in the asked format"},
        **ERRORS,
    },  # fmt: skip
)
def get_layer(
    engine: EngineDep,
    principal: PrincipalDep,
    level: Annotated[str, Path(description="district, street, community, grid, building, "
                                           "facility")],
    format: Annotated[Literal["geojson", "shapefile", "gpkg"], Query()] = "geojson",
    encoding: Annotated[Literal["UTF-8", "GBK"], Query(description="shapefile text")] = "UTF-8",
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy (EPSG:4326)")] = None,
    generation: Annotated[int | None, Query(ge=1, description="default: active")] = None,
) -> Response:
    """Export a layer (no personal data) filtered by bbox and generation."""
    _driver, suffix, media = export.FORMATS[format]
    with engine.connect() as sa_conn, tempfile.TemporaryDirectory() as tmp:
        conn = sa_conn.connection.driver_connection
        frame = export.read_export_frame(conn, level, bbox=export.parse_bbox(bbox),  # type: ignore[arg-type]
                                         generation=generation,
                                         scopes=scope_patterns(principal))  # fmt: skip
        out = export.write_export(frame, level, format, FilePath(tmp) / f"{level}{suffix}",
                                  encoding=encoding)  # fmt: skip
        body = out.read_bytes()
    headers = {"Content-Disposition": f'attachment; filename="{level}{suffix}"'}
    return Response(body, media_type=media, headers=headers)
