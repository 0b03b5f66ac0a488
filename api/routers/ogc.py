"""OGC API – Features (Part 1: Core, GeoJSON) over the map layers, at ``/ogc``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from api.dependencies import SessionDep
from api.schemas import ErrorOut
from api.security import PrincipalDep
from gridmap.auth.scope import layer_patterns
from tiles import features
from tiles.layers import Layer

router = APIRouter(prefix="/ogc", tags=["ogc"])

GEOJSON = "application/geo+json"
JSON = "application/json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CollectionPath = Annotated[str, Path(description="collection (layer) id", examples=["grids"])]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}
JSON_200: dict[int | str, dict[str, Any]] = {200: {"content": {JSON: {}}}}
GEOJSON_200: dict[int | str, dict[str, Any]] = {200: {"content": {GEOJSON: {}}}}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _link(href: str, rel: str, media: str, title: str = "") -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": media}
    if title:
        link["title"] = title
    return link


@router.get("", operation_id="ogc_landing", response_class=JSONResponse, responses=JSON_200)
def landing(request: Request) -> JSONResponse:
    """The landing page: links to the API definition, conformance and collections."""
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    return JSONResponse({
        "title": "gridmap",
        "description": "Grid division, buildings and facilities as OGC API – Features",
        "links": [
            _link(base, "self", JSON, "this document"),
            _link(f"{root}/openapi.json", "service-desc",
                  "application/vnd.oai.openapi+json;version=3.0", "the API definition"),
            _link(f"{root}/docs", "service-doc", "text/html", "the API documentation"),
            _link(f"{base}/conformance", "conformance", JSON, "conformance classes"),
            _link(f"{base}/collections", "data", JSON, "the collections"),
        ],
    })  # fmt: skip


@router.get(
    "/conformance", operation_id="ogc_conformance", response_class=JSONResponse,
    responses=JSON_200,
)
def conformance() -> JSONResponse:
    """The conformance classes implemented."""
    return JSONResponse({"conformsTo": CONFORMANCE})


def _collection(layer: Layer, base: str, extent: tuple[float, ...]) -> dict[str, Any]:
    href = f"{base}/collections/{layer.name}"
    return {
        "id": layer.name,
        "title": layer.title,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [list(extent)], "crs": CRS84}},
        "links": [
            _link(href, "self", JSON, layer.title),
            _link(f"{href}/items", "items", GEOJSON, f"{layer.title}: items"),
        ],
    }


@router.get(
    "/collections", operation_id="ogc_collections", response_class=JSONResponse,
    responses=JSON_200,
)
def collections(request: Request, session: SessionDep) -> JSONResponse:
    """Every layer as a feature collection."""
    base = _base(request)
    extent = features.city_extent(session)
    return JSONResponse({
        "links": [_link(f"{base}/collections", "self", JSON)],
        "collections": [_collection(la, base, extent) for la in features.feature_layers()],
    })


@router.get(
    "/collections/{collection}", operation_id="ogc_collection", response_class=JSONResponse,
    responses={**JSON_200, **ERRORS},
)
def collection(request: Request, collection: CollectionPath, session: SessionDep) -> JSONResponse:
    """One collection's description."""
    layer = features.get_collection(collection)
    return JSONResponse(_collection(layer, _base(request), features.city_extent(session)))


@router.get(
    "/collections/{collection}/items", operation_id="ogc_items", response_class=JSONResponse,
    responses={**GEOJSON_200, **ERRORS},
)
def items(
    request: Request,
    collection: CollectionPath,
    session: SessionDep,
    principal: PrincipalDep,
    bbox: Annotated[str | None, Query(description="west,south,east,north (CRS84)")] = None,
    limit: Annotated[int, Query(ge=1, le=features.MAX_LIMIT)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    properties: Annotated[str | None, Query(description="comma-separated names")] = None,
) -> JSONResponse:
    """Features of a collection as a GeoJSON FeatureCollection, paged with next/prev links."""
    layer = features.get_collection(collection)
    page = features.query_items(
        session, collection, bbox=features.parse_bbox(bbox), limit=limit, offset=offset,
        properties=features.select_properties(layer, properties),
        scopes=layer_patterns(principal, collection),
    )
    href = f"{_base(request)}/collections/{collection}"
    body: dict[str, Any] = {"type": "FeatureCollection", "features": page.features}
    if page.features or offset == 0:  # past the end the window count is unknown
        body["numberMatched"] = page.matched
    body["numberReturned"] = len(page.features)
    body["timeStamp"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    body["links"] = _page_links(request, href, limit, offset, len(page.features), page.matched)
    return JSONResponse(body, media_type=GEOJSON)


def _page_links(
    request: Request, href: str, limit: int, offset: int, returned: int, matched: int
) -> list[dict[str, str]]:
    self_url = request.url
    links = [
        _link(str(self_url), "self", GEOJSON, "this page"),
        _link(href, "collection", JSON, "the collection"),
    ]
    if returned == limit and offset + limit < matched:
        next_url = self_url.include_query_params(offset=offset + limit, limit=limit)
        links.append(_link(str(next_url), "next", GEOJSON, "next page"))
    if offset > 0:
        prev_url = self_url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append(_link(str(prev_url), "prev", GEOJSON, "previous page"))
    return links


@router.get(
    "/collections/{collection}/items/{item_id}", operation_id="ogc_item",
    response_class=JSONResponse, responses={**GEOJSON_200, **ERRORS},
)
def item(
    request: Request, collection: CollectionPath, item_id: str, session: SessionDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """One feature by its code."""
    feature = features.get_item(session, collection, item_id,
                                layer_patterns(principal, collection))
    href = f"{_base(request)}/collections/{collection}"
    feature["links"] = [
        _link(f"{href}/items/{item_id}", "self", GEOJSON),
        _link(href, "collection", JSON),
    ]
    return JSONResponse(feature, media_type=GEOJSON)
