"""Areas of the division: detail with ancestors, children, geometry, grid profile."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from api.dependencies import SessionDep
from api.schemas import AreaDetailOut, AreaHitOut, AreaOut, ErrorOut, GridProfileOut
from api.security import PrincipalDep
from gridmap import areas

router = APIRouter(prefix="/api/v1", tags=["areas"])

CodePath = Annotated[str, Path(description="6/9/12/15-digit area code", examples=["500106"])]
GenerationQuery = Annotated[
    int | None, Query(description="generation id (default: the active one)", ge=1)
]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get(
    "/areas", operation_id="search_areas", response_model=list[AreaHitOut], responses=ERRORS
)
def search_areas(
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(min_length=1, max_length=64, description="code prefix or name")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    generation: GenerationQuery = None,
) -> Any:
    """Areas whose code starts with ``q`` or whose name contains it (with bounding boxes)."""
    hits = areas.search_areas(session, q, limit=limit, generation=generation,
                               principal=principal)
    return [{**asdict(h.area), "bbox": h.bbox} for h in hits]


@router.get(
    "/areas/{code}", operation_id="get_area", response_model=AreaDetailOut, responses=ERRORS
)
def get_area(
    code: CodePath, session: SessionDep, principal: PrincipalDep,
    generation: GenerationQuery = None,
) -> Any:
    """An area with its ancestors (city first) and bounding box."""
    detail = areas.get_area(session, code, generation, principal)
    return {**asdict(detail.area), "ancestors": [asdict(a) for a in detail.ancestors],
            "bbox": detail.bbox, "generation": detail.generation}


@router.get(
    "/areas/{code}/children",
    operation_id="list_area_children",
    response_model=list[AreaOut],
    responses=ERRORS,
)
def list_children(
    code: CodePath, session: SessionDep, principal: PrincipalDep,
    generation: GenerationQuery = None,
) -> Any:
    """Direct children of an area, ordered by code."""
    return [asdict(a) for a in areas.children_of(session, code, generation, principal)]


@router.get(
    "/areas/{code}/geometry",
    operation_id="get_area_geometry",
    responses={
        200: {"content": {"application/geo+json": {}}, "description": "GeoJSON Feature"},
        **ERRORS,
    },
    response_class=JSONResponse,
)
def get_geometry(
    code: CodePath, session: SessionDep, principal: PrincipalDep,
    generation: GenerationQuery = None,
) -> JSONResponse:
    """The area's boundary as a GeoJSON Feature (EPSG:4326)."""
    feature = areas.area_geojson(session, code, generation, principal)
    return JSONResponse(feature, media_type="application/geo+json")


@router.get(
    "/grids/{code}/profile",
    operation_id="get_grid_profile",
    response_model=GridProfileOut,
    responses=ERRORS,
)
def get_profile(
    code: CodePath, session: SessionDep, principal: PrincipalDep,
    generation: GenerationQuery = None,
) -> Any:
    """The grid's holographic summary: people, households, buildings, facilities, workers."""
    profile = areas.grid_profile(session, code, generation, principal)
    return asdict(profile)
